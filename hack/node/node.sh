#!/usr/bin/env bash
# A real single-node Kubernetes node on this machine, on top of the test
# control plane (hack/cluster): containerd with NRI, runc, the kubelet, Multus
# (thin plugin) over a default bridge network, and the NAD CRD.
#
#   hack/node/node.sh up       start (idempotent: a Ready node is reused)
#   hack/node/node.sh down     stop the node parts and leave the host as found
#                              (the control plane keeps running)
#   hack/node/node.sh restart kubelet|containerd
#                              restart one component; running pods stay
#   hack/node/node.sh status   exit 0 when the node is Ready
#   hack/node/node.sh env      print variables for tests (KUBECONFIG, sockets)
#
# Everything lives under $NETCLAIM_NODE_DIR (default /tmp/nc-node), except the
# kubelet root (/var/lib/nc-kubelet) and containerd's root, which need a real
# filesystem for overlayfs and bind mounts. Pods get their default network
# from the bridge nc-br0 in 198.18.0.0/26; nothing touches eth0.
#
# What the node changes outside those directories is recorded before it starts
# ($dir/host-state) and undone by `down`: sysctls the kubelet and the bridge
# plugin set, directories the kubelet and containerd create at fixed paths,
# the kubelet's cgroups, the bridge, an /etc/hosts line (a /run/netns that
# the suites' `ip netns add` made meanwhile too: restore_netns_dir) and /dev's
# mount propagation (shared, as on systemd hosts). Pod network
# namespaces are mounted under $dir (containerd's netns_mounts_under_state_dir).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../lib/fds.sh"
repo="$(cd "$here/../.." && pwd)"
dir=${NETCLAIM_NODE_DIR:-/tmp/nc-node}
node_name=${NETCLAIM_NODE_NAME:-nc-node}
kubelet_root=/var/lib/nc-kubelet
containerd_root=/var/lib/nc-containerd
containerd_sock=$dir/run/containerd.sock
nri_sock=$dir/run/nri.sock
bridge=nc-br0
# From the benchmarking range 198.18.0.0/15: never this VM's own network
# (192.0.2.0/24, eth0's) nor 203.0.113.0/24, where this sandbox reaches its
# package registries (a connected route over it would cut every build on the
# machine off from them; checked in guard_routes).
pod_cidr=198.18.0.0/26
# The bridge's gateway address doubles as the node IP: the kubelet refuses a
# loopback node IP, and eth0's network is off limits.
node_ip=198.18.0.1
cni_bins=/usr/lib/cni
node_taint_key=netclaim.dev/e2e-node
state_file=$dir/host-state
hosts_marker="# netclaim test node $node_name"

# Set by the kubelet (container_manager_linux setupKernelTunables) and by the
# bridge plugin (isGateway enables forwarding).
sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)
# Fixed paths the kubelet, containerd and libcni create whatever the config says.
# The installed agent's DaemonSet (test/e2e) creates its hostPath directories too.
host_paths=(/var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni /run/containerd
  /run/netns /var/run/netns /etc/cni /opt/cni /etc/cdi /var/run/cdi /etc/nri /opt/nri
  /var/lib/netclaim /run/netclaim /dev/infiniband)

log() { echo "node: $*" >&2; }

cluster_env() { "$repo/hack/cluster/cluster.sh" env; }
kubeconfig() { cluster_env | sed -n 's/^NETCLAIM_KUBECONFIG=//p'; }
kubectl_() { "$k8s_bin/kubectl" --kubeconfig "$(kubeconfig)" "$@"; }

alive() { [[ -f $dir/$1.pid ]] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

ready() {
  alive kubelet && alive containerd || return 1
  curl -fsS --max-time 2 http://127.0.0.1:10248/healthz >/dev/null 2>&1 || return 1
  [[ "$(kubectl_ get node "$node_name" --request-timeout 5s -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

# Container processes left in the kubelet's cgroups (their shim died first).
cgroup_pids() {
  local dirs; dirs=$(cgroup_dirs)
  [[ -n $dirs ]] || return 0
  # shellcheck disable=SC2086 # one path per word
  find $dirs -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u
}

cgroup_dirs() { find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name kubepods 2>/dev/null || true; }

# Records the host as found, once: a second `up` after a failed one must not
# record the node's own changes as the original state.
record_host_state() {
  [[ -f $state_file ]] && return
  mkdir -p "$dir"
  {
    for s in "${sysctls[@]}"; do echo "sysctl $s $(sysctl -n "$s")"; done
    for p in "${host_paths[@]}"; do [[ -e $p ]] || echo "absent $p"; done
    [[ -n "$(cgroup_dirs)" ]] || echo "absent-cgroups kubepods"
    echo "propagation /dev $(findmnt -no PROPAGATION /dev)"
  } > "$state_file.tmp"
  mv "$state_file.tmp" "$state_file"
}

ip_to_int() { local IFS=.; read -r a b c d <<< "$1"; echo $(((a << 24) + (b << 16) + (c << 8) + d)); }

# Refuses a pod network that would capture an address the machine needs.
guard_routes() {
  local base=${pod_cidr%/*} bits=${pod_cidr#*/} host address
  local mask=$(((0xffffffff << (32 - bits)) & 0xffffffff))
  for host in proxy.golang.org registry.npmjs.org deb.debian.org; do
    for address in $(getent ahostsv4 "$host" 2>/dev/null | awk '{print $1}' | sort -u); do
      if (( ($(ip_to_int "$address") & mask) == ($(ip_to_int "$base") & mask) )); then
        log "pod network $pod_cidr would capture $host ($address); pick another range"
        exit 1
      fi
    done
  done
}

setup_host_network() {
  guard_routes
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
  fi
  ip addr replace "$node_ip/${pod_cidr#*/}" dev "$bridge"
  ip link set "$bridge" up
  # The API server dials the kubelet by the node's Hostname address first
  # (its default --kubelet-preferred-address-types), which is the node name.
  grep -qF "$hosts_marker" /etc/hosts || echo "$node_ip $node_name $hosts_marker" >> /etc/hosts
}

write_containerd_config() {
  mkdir -p "$dir/cni/net.d" "$dir/cni/bin" "$dir/run" "$dir/log" "$dir/cdi" "$dir/nri/plugins" "$dir/nri/conf.d" "$dir/manifests"
  # A shared mount, as /run is on systemd hosts, made before containerd mounts pod namespaces
  # there: a pod that mounts it with HostToContainer propagation (the installed agent, in
  # test/e2e/agent.ts) then sees the namespaces of pods started after it. down()
  # unmounts everything under $dir.
  mountpoint -q "$dir/run" || mount --bind "$dir/run" "$dir/run"
  mount --make-rshared "$dir/run"
  # The agent's DaemonSet mounts /dev/infiniband with HostToContainer propagation, which the
  # runtime refuses under a private /dev (this VM has no systemd to make it shared).
  mount --make-rshared /dev
  cat > "$dir/containerd.toml" <<TOML
version = 4
root = "$containerd_root"
state = "$dir/run/containerd"
# NRI's default validator, as deploy/node-setup ships it for nodes.
imports = ["$repo/deploy/node-setup/containerd/nri-default-validator.toml"]
[plugins.'io.containerd.server.v1.grpc']
  address = "$containerd_sock"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "$containerd_sock.ttrpc"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "registry.local/netclaim/pause:latest"
[plugins.'io.containerd.cri.v1.runtime']
  # This VM withholds CAP_SYS_RESOURCE, so no process may lower its
  # oom_score_adj below 0, and runc fails the kubelet's -998 for sandboxes
  # ("failed to update /proc/self/oom_score_adj: Permission denied"). This
  # clamps every requested value to containerd's own (0).
  restrict_oom_score_adj = true
  # Pod network namespaces live under $dir, not in the host's /run/netns.
  netns_mounts_under_state_dir = true
  enable_cdi = true
  cdi_spec_dirs = ["$dir/cdi"]
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "/usr/sbin/runc"
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$dir/cni/bin"]
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
[plugins.'io.containerd.nri.v1.nri']
  disable = false
  socket_path = "$nri_sock"
  plugin_path = "$dir/nri/plugins"
  plugin_config_path = "$dir/nri/conf.d"
  plugin_registration_timeout = "5s"
  plugin_request_timeout = "2s"
TOML
}

write_cni_config() {
  for plugin in "$cni_bins"/*; do ln -sf "$plugin" "$dir/cni/bin/"; done
  ln -sf "$node_bin/multus" "$dir/cni/bin/multus"
  # Multus reads NetworkAttachmentDefinitions and writes the network-status
  # annotation with this kubeconfig.
  cp "$(kubeconfig)" "$dir/multus.kubeconfig"
  cat > "$dir/cni/net.d/00-multus.conf" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "multus-cni-network",
  "type": "multus",
  "kubeconfig": "$dir/multus.kubeconfig",
  "binDir": "$dir/cni/bin",
  "cniDir": "$dir/run/multus",
  "logFile": "$dir/log/multus.log",
  "logLevel": "verbose",
  "delegates": [{
    "cniVersion": "1.0.0",
    "name": "nc-default",
    "plugins": [
      { "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false,
        "ipam": { "type": "host-local", "dataDir": "$dir/run/ipam",
                  "ranges": [[{ "subnet": "$pod_cidr", "gateway": "$node_ip" }]] } }
    ]
  }]
}
JSON
}

write_crictl_config() {
  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' "$containerd_sock" "$containerd_sock" > "$dir/crictl.yaml"
}

write_kubelet_config() {
  cat > "$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$containerd_sock
cgroupsPerQOS: true
cgroupRoot: /
enforceNodeAllocatable: [pods]
authentication:
  anonymous: { enabled: true }
  webhook: { enabled: false }
authorization: { mode: AlwaysAllow }
rotateCertificates: false
serverTLSBootstrap: false
resolvConf: /etc/resolv.conf
evictionHard: { nodefs.available: "1%", imagefs.available: "1%", memory.available: "100Mi" }
localStorageCapacityIsolation: false
makeIPTablesUtilChains: false
podLogsDir: $dir/log/pods
staticPodPath: $dir/manifests
registerNode: true
# Other suites share the control plane and run DaemonSets and pods meant for
# their fake nodes; only pods that tolerate this taint land on the real node.
registerWithTaints:
  - { key: $node_taint_key, value: "true", effect: NoSchedule }
syncFrequency: 10s
fileCheckFrequency: 10s
YAML
}

start_containerd() {
  log "starting containerd"
  start_daemon "$dir/containerd.pid" "$dir/log/containerd.log" \
    env PATH="$node_bin:$PATH" setsid "$node_bin/containerd" --config "$dir/containerd.toml"
  # The socket exists a moment before containerd serves on it: wait for an answer.
  for _ in $(seq 300); do "$node_bin/ctr" --address "$containerd_sock" version >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "containerd did not start; see $dir/log/containerd.log"; tail -20 "$dir/log/containerd.log" >&2; exit 1
}

start_kubelet() {
  log "starting kubelet"
  local kubeconfig; kubeconfig=$(kubeconfig)
  start_daemon "$dir/kubelet.pid" "$dir/log/kubelet.log" \
    env PATH="$node_bin:$PATH" setsid "$k8s_bin/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$kubeconfig" \
    --hostname-override "$node_name" --node-ip "$node_ip" --root-dir "$kubelet_root" \
    --cert-dir "$kubelet_root/pki" --v=2
}

wait_ready() {
  for _ in $(seq 120); do ready && return 0; alive kubelet || break; sleep 0.5; done
  log "node did not become Ready; see $dir/log/kubelet.log"; tail -20 "$dir/log/kubelet.log" >&2
  exit 1
}

# ctr, quiet unless it fails (it warns about cgroup v1 on every call).
ctr_() {
  local out
  out=$("$node_bin/ctr" --address "$containerd_sock" -n k8s.io "$@" 2>&1) || { echo "$out" >&2; return 1; }
}

import_images() {
  for image in pause busybox; do
    ctr_ images import --local "$images/$image.tar"
    # Only CRI pulls pin images; pinned ones survive the kubelet's image GC.
    ctr_ images label "registry.local/netclaim/$image:latest" io.cri-containerd.pinned=pinned
  done
}

binaries() {
  k8s_bin=$("$repo/hack/cluster/build.sh")
  node_bin=$("$here/build.sh")
}

up() {
  "$repo/hack/cluster/cluster.sh" up >/dev/null
  binaries
  images=$("$here/images.sh")
  if ready; then
    import_images # cheap, and picks up rebuilt images
    log "node $node_name is already Ready"
    return
  fi
  stop_processes
  record_host_state
  setup_host_network
  write_containerd_config
  write_cni_config
  write_kubelet_config
  write_crictl_config
  mkdir -p "$containerd_root" "$kubelet_root"
  start_containerd
  import_images
  start_kubelet
  kubectl_ apply -f "$here/nad-crd.yaml" >/dev/null
  wait_ready
  kubectl_ wait --for condition=Established crd/network-attachment-definitions.k8s.cni.cncf.io --timeout 30s >/dev/null
  log "node $node_name is Ready"
}

# Restarts one component the way a node upgrade or crash would: running pods
# (their shims and network namespaces) stay.
restart() { # kubelet|containerd
  binaries
  alive kubelet && alive containerd || { log "the node is not up"; exit 1; }
  case $1 in
    kubelet) stop_component kubelet; start_kubelet ;;
    containerd) stop_component containerd; start_containerd ;;
    *) echo "usage: $0 restart kubelet|containerd" >&2; exit 2 ;;
  esac
  wait_ready
  log "$1 restarted"
}

stop_pid() { # pid
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

stop_component() { # name
  [[ -f $dir/$1.pid ]] || return 0
  stop_pid "$(cat "$dir/$1.pid")"
  rm -f "$dir/$1.pid"
}

# The shims of our containerd (found by its socket), which outlive it.
our_shims() { pgrep -f "containerd-shim-runc-v2 .*-address $containerd_sock" || true; }

stop_processes() {
  stop_component kubelet
  if alive containerd && [[ -S $containerd_sock ]]; then
    # Removing the sandboxes runs the CNI DEL (IPAM release, netns removal)
    # and stops the shims, as the kubelet would.
    "$node_bin/crictl" --config "$dir/crictl.yaml" rmp --all --force >/dev/null 2>&1 || true
  fi
  stop_component containerd
  for pid in $(our_shims); do stop_pid "$pid"; done
}

# Mount points at or under a path, deepest first.
mounts_under() { awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/mounts | sort -r; }

# Network namespaces the suites make with `ip netns add` (test/node: ncsim-*,
# test/netns: nctest-*). The node itself makes none in /run/netns (containerd
# keeps pod namespaces under $dir: netns_mounts_under_state_dir).
test_netns='^(ncsim|nctest)-'

# /run/netns (or /var/run/netns, the same directory here), absent when the node
# came up. `ip netns add`, which the suites run, creates it and bind-mounts it
# onto itself (shared, so namespaces show in every mount namespace): rm cannot
# remove that mount point ("Device or resource busy"), and what is in it are
# namespaces. Removes the suites' leftover namespaces only; if any other is
# there, leaves the directory as it is; else undoes the self-bind and removes
# the empty directory.
restore_netns_dir() { # path
  local path ns others=()
  path=$(realpath -e "$1" 2>/dev/null) || return 0
  for ns in "$path"/* "$path"/.[!.]*; do
    [[ -e $ns || -L $ns ]] || continue
    if [[ ${ns##*/} =~ $test_netns ]]; then
      umount -l "$ns" 2>/dev/null || true
      rm -f "$ns" || others+=("${ns##*/}")
    else
      others+=("${ns##*/}")
    fi
  done
  if ((${#others[@]})); then
    log "leaving $path: it holds network namespaces the node did not make (${others[*]})"
    return 0
  fi
  local m
  for m in $(mounts_under "$path"); do
    if [[ $m != "$path" ]]; then log "leaving $path: $m is mounted under it"; return 0; fi
  done
  for _ in 1 2 3 4; do
    [[ -n "$(mounts_under "$path")" ]] || break
    umount "$path" 2>/dev/null || umount -l "$path" || { log "leaving $path: cannot unmount it"; return 0; }
  done
  rmdir "$path" 2>/dev/null || log "leaving $path: not empty"
}

restore_host_state() {
  [[ -f $state_file ]] || return 0
  while read -r kind what value; do
    case $kind in
      sysctl) [[ "$(sysctl -n "$what")" == "$value" ]] || sysctl -qw "$what=$value" ;;
      propagation) [[ $value != private ]] || mount --make-rprivate "$what" ;;
      absent)
        case $what in
          /run/netns | /var/run/netns) restore_netns_dir "$what" ;;
          *)
            # rm -rf would delete what a mount under the path shows, or fail on its mount point.
            if [[ -e $what && -n "$(mounts_under "$(realpath -e "$what")")" ]]; then
              log "leaving $what: something is mounted there ($(mounts_under "$(realpath -e "$what")" | tr '\n' ' '))"
            else
              rm -rf "$what"
            fi ;;
        esac ;;
      absent-cgroups)
        for pid in $(cgroup_pids); do stop_pid "$pid"; done
        for cg in $(cgroup_dirs); do find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true; done ;;
    esac
  done < "$state_file"
}

down() {
  binaries
  if "$repo/hack/cluster/cluster.sh" status; then
    kubectl_ delete pods --all-namespaces --field-selector "spec.nodeName=$node_name" \
      --force --grace-period 0 --wait=false >/dev/null 2>&1 || true
    kubectl_ delete node "$node_name" --ignore-not-found >/dev/null || true
  fi
  stop_processes
  for m in $(awk -v a="$kubelet_root" -v b="$containerd_root" -v c="$dir" \
      'index($2, a) == 1 || index($2, b) == 1 || index($2, c) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  restore_host_state
  ip link delete "$bridge" 2>/dev/null || true
  sed -i "\|$hosts_marker\$|d" /etc/hosts
  rm -rf "$dir" "$kubelet_root" "$containerd_root"
  log "node removed"
}

# One up/down/restart at a time (test files running in parallel all call up):
# lock this script itself, which leaves nothing behind. The daemons started
# here, and the control plane `up` starts through hack/cluster/cluster.sh, must
# not inherit the lock's descriptor (start_daemon), or they hold it forever.
serialize() { exec 9<"$here/node.sh"; flock 9; }

# Helm values that install the agent's chart on this node (docs/install.md's values): where
# this node keeps what a standard node keeps elsewhere. test/e2e/agent.ts and make demo use
# them; the image must be in the node's containerd (never pulled).
helm_values() {
  local server host port
  server=$(kubectl_ config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  host=${server#https://}; port=${host##*:}; host=${host%:*}
  cat <<YAML
image: { pullPolicy: Never }
nodeSelector: { kubernetes.io/hostname: $node_name }
kubelet: { rootDir: $kubelet_root }
nri: { socketPath: $nri_sock }
cdi: { specDir: $dir/cdi }
# containerd's netns_mounts_under_state_dir, under the shared mount $dir/run.
netns: { dir: $dir/run/containerd/io.containerd.grpc.v1.cri/netns }
# The node's own CNI configuration is its Multus's: the agent gets a directory of its own.
cni: { binDir: $cni_bins, confDir: $dir/run/netclaim-cni-conf }
# The test cluster has no Service network: the API server on the node's loopback.
env:
  - { name: KUBERNETES_SERVICE_HOST, value: "$host" }
  - { name: KUBERNETES_SERVICE_PORT, value: "$port" }
YAML
}

case ${1:-} in
  up) serialize; up ;;
  down) serialize; down ;;
  restart) serialize; restart "${2:-}" ;;
  status) binaries; ready ;;
  env)
    echo "NETCLAIM_KUBECONFIG=$(kubeconfig)"
    echo "NETCLAIM_KUBE_BIN=$(cluster_env | sed -n 's/^NETCLAIM_KUBE_BIN=//p')"
    echo "NETCLAIM_NODE_BIN=$("$here/build.sh")"
    echo "NETCLAIM_NODE_NAME=$node_name"
    echo "NETCLAIM_NODE_IP=$node_ip"
    echo "NETCLAIM_NODE_TAINT=$node_taint_key"
    echo "NETCLAIM_NRI_SOCKET=$nri_sock"
    echo "NETCLAIM_KUBELET_DIR=$kubelet_root"
    echo "NETCLAIM_CONTAINERD_SOCKET=$containerd_sock"
    echo "NETCLAIM_CRICTL_CONFIG=$dir/crictl.yaml"
    echo "NETCLAIM_CDI_DIR=$dir/cdi"
    echo "NETCLAIM_STATIC_POD_DIR=$dir/manifests"
    echo "NETCLAIM_POD_CIDR=$pod_cidr"
    ;;
  helm-values) binaries; helm_values ;;
  *) echo "usage: $0 up|down|restart kubelet|containerd|status|env|helm-values" >&2; exit 2 ;;
esac
