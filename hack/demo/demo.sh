#!/usr/bin/env bash
# make demo: a pod with one Multus network and one netclaim DRA interface on a
# real single-node cluster on this machine.
#
#   hack/demo/demo.sh        bring it up and show the pod's networks
#   hack/demo/demo.sh down   remove the demo, the agent and the node (the control plane stays;
#                            hack/cluster/cluster.sh down stops it)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir=/tmp/nc-demo
export PATH="$repo/node_modules/.bin:$PATH"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

helm_() { "$("$repo/hack/helm/build.sh")" --kubeconfig "$KUBECONFIG" "$@"; }

down() {
  if [[ -f $dir/kubeconfig.env ]]; then
    # shellcheck disable=SC1091
    source "$dir/kubeconfig.env"
    "$KUBECTL" --kubeconfig "$KUBECONFIG" delete -f "$dir/demo.yaml" --ignore-not-found --wait --timeout 60s >/dev/null 2>&1 || true
    # The pod is gone, so its device is back on the host: the agent can go (docs/install.md).
    helm_ uninstall netclaim --namespace default --wait --cascade foreground --timeout 120s >/dev/null 2>&1 || true
  fi
  ip link delete ncdemo0 2>/dev/null || true
  ip link delete ncdemom 2>/dev/null || true
  "$repo/hack/node/node.sh" down
  rm -rf "$dir"
  echo "demo removed; the control plane still runs (make cluster-down stops it)"
}

up() {
  say "Building and starting a single-node cluster (control plane, kubelet, containerd with NRI, Multus)"
  "$repo/hack/node/node.sh" up
  eval "$("$repo/hack/node/node.sh" env | sed 's/^/export /')"
  KUBECTL="$NETCLAIM_KUBE_BIN/kubectl"
  KUBECONFIG="$NETCLAIM_KUBECONFIG"
  mkdir -p "$dir"
  printf 'KUBECTL=%q\nKUBECONFIG=%q\n' "$KUBECTL" "$KUBECONFIG" > "$dir/kubeconfig.env"
  k() { "$KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }

  say "Pods with claims require netclaim's NRI plugin (deploy/required-plugin; the node's runtime enforces it)"
  minor=${NETCLAIM_KUBE_VERSION#v1.}; minor=${minor%%.*}
  if ((minor >= 36)); then variant=v1; else variant=v1beta1; fi
  k apply -k "$repo/deploy/required-plugin/$variant"

  say "Stand-in NICs: a veth pair (ncdemo0, ncdemo1) for netclaim, and ncdemom as the Multus macvlan master"
  ip link show ncdemo0 >/dev/null 2>&1 || ip link add ncdemo0 type veth peer name ncdemo1
  ip link show ncdemom >/dev/null 2>&1 || { ip link add ncdemom type veth peer name ncdemomp; ip link set ncdemom up; ip link set ncdemomp up; }

  say "Installing the agent from its image (make image) with the Helm chart, as docs/install.md says"
  "$repo/hack/node/node.sh" image-load "$repo/build/image/netclaim.tar" "$(cat "$repo/build/image/ref")"
  "$repo/hack/node/node.sh" helm-values > "$dir/node-values.yaml"
  # Helm takes over no object `kubectl apply -k` made (the test suites apply the overlay's).
  if ! helm_ status netclaim --namespace default >/dev/null 2>&1; then
    k delete -k "$repo/deploy/overlays/kubernetes" --ignore-not-found --wait >/dev/null
  fi
  helm_ upgrade --install netclaim "$repo/deploy/helm/netclaim" --namespace default \
    --values "$dir/node-values.yaml" --values "$here/values.yaml"
  k rollout status daemonset/netclaim-agent --namespace netclaim --timeout 180s

  say "What the agent publishes: the ResourceSlice of $NETCLAIM_NODE_NAME"
  slice() { k get resourceslices --field-selector "spec.nodeName=$NETCLAIM_NODE_NAME,spec.driver=netclaim.dev" -o jsonpath='{.items[*].spec.devices[*].name}'; }
  for _ in $(seq 60); do [[ "$(slice)" == *ncdemo0* ]] && break; sleep 0.5; done
  k get resourceslices --field-selector "spec.nodeName=$NETCLAIM_NODE_NAME" -o custom-columns='NAME:.metadata.name,NODE:.spec.nodeName,DEVICES:.spec.devices[*].name'
  # A pod created before the devices were published would wait for the scheduler's next retry.
  k delete pod netclaim-demo --ignore-not-found --wait >/dev/null

  say "A DeviceClass, two NetworkAttachmentDefinitions, a ResourceClaimTemplate and a pod using both"
  sed -e "s|@NODE@|$NETCLAIM_NODE_NAME|g" "$here/demo.yaml" > "$dir/demo.yaml"
  k apply -f "$dir/demo.yaml"
  k wait --for=condition=Ready pod/netclaim-demo --timeout=120s

  claim=$(k get pod netclaim-demo -o jsonpath='{.status.resourceClaimStatuses[0].resourceClaimName}')
  for _ in $(seq 30); do k get resourceclaim "$claim" -o jsonpath='{.status.devices[0].networkData.interfaceName}' | grep -q . && break; sleep 0.5; done
  say "kubectl describe resourceclaim $claim"
  k describe resourceclaim "$claim"
  say "The pod's Multus network-status annotation"
  k get pod netclaim-demo -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}'; echo
  say "ip addr inside the pod: eth0 (default network), net1 (Multus), data0 (netclaim)"
  k exec netclaim-demo -- ip addr

  say "Try it yourself"
  cat <<TEXT
  export KUBECONFIG=$KUBECONFIG
  $KUBECTL get pods,resourceclaims -o wide
  $KUBECTL exec netclaim-demo -- ip route
  $KUBECTL logs -n netclaim daemonset/netclaim-agent               # the agent's JSON log
  $KUBECTL exec -n netclaim daemonset/netclaim-agent -- netclaim devices   # what it would publish, and why
Tear down with: make demo-down   (or hack/demo/demo.sh down)
TEXT
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
