#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kubectl, etcd) from the pinned wrapper module of
# K8S_VERSION into a cache outside the checkout, and prints the bin directory:
#
#   hack/cluster/build.sh   -> $NETCLAIM_CACHE/k8s/<version>/bin
#
# The stamp records a hash of the wrapper's go.mod/go.sum and the Go version,
# so a warm cache returns at once and any pin change rebuilds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
module="$here/modules/$K8S_VERSION"
[[ -f $module/go.mod ]] || { echo "cluster-build: no wrapper module for $K8S_VERSION; run hack/cluster/new-wrapper.sh $K8S_VERSION" >&2; exit 1; }
cache=${NETCLAIM_CACHE:-$HOME/.cache/netclaim}
out="$cache/k8s/$K8S_VERSION"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd)
key=$( (go version; cat "$module/go.mod" "$module/go.sum") | sha256sum | cut -c1-16)

built() {
  [[ "$(cat "$out/stamp" 2>/dev/null)" == "$key" ]] || return 1
  for binary in "${binaries[@]}"; do [[ -x $out/bin/$binary ]] || return 1; done
}

if ! built; then
  echo "cluster-build: building Kubernetes $K8S_VERSION and etcd into $out/bin (cold: tens of minutes)" >&2
  [[ $K8S_VERSION =~ ^v1\.([0-9]+)\. ]]
  minor=${BASH_REMATCH[1]}
  ldflags=""
  # Without these the binaries call themselves v0.0.0-master (hack/lib/version.sh).
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  staging="$out/bin.tmp"
  rm -rf "$staging" && mkdir -p "$staging"
  (
    cd "$module"
    export CGO_ENABLED=0
    go build -trimpath -ldflags "$ldflags" -o "$staging/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl \
      k8s.io/kubernetes/cmd/kubelet
    go build -trimpath -o "$staging/etcd" go.etcd.io/etcd/server/v3
  )
  rm -rf "$out/bin" && mv "$staging" "$out/bin"
  echo "$key" > "$out/stamp"
fi
echo "$out/bin"
