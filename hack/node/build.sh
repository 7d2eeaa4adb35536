#!/usr/bin/env bash
# Builds the node's container runtime tools from Go modules into a cache
# outside the checkout, and prints the bin directory:
#
#   hack/node/build.sh   -> $NETCLAIM_CACHE/node/<versions>/bin
#
# containerd v2.2.1+ and cri-tools have no replace/exclude directives, so a
# plain `go install module@version` builds them reproducibly. Multus comes
# from the peers archive instead (hack/node/build-multus.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
cache=${NETCLAIM_CACHE:-$HOME/.cache/netclaim}
out="$cache/node/containerd-$CONTAINERD_VERSION-crictl-$CRICTL_VERSION"
binaries=(containerd containerd-shim-runc-v2 ctr crictl)
built() { for b in "${binaries[@]}"; do [[ -x $out/bin/$b ]] || return 1; done; }
if ! built; then
  echo "node-build: building containerd $CONTAINERD_VERSION and crictl $CRICTL_VERSION into $out/bin" >&2
  staging="$out/bin.tmp"
  rm -rf "$staging" && mkdir -p "$staging"
  export GOBIN="$staging" CGO_ENABLED=0
  for cmd in containerd containerd-shim-runc-v2 ctr; do
    go install -trimpath "github.com/containerd/containerd/v2/cmd/$cmd@$CONTAINERD_VERSION"
  done
  go install -trimpath "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  rm -rf "$out/bin" && mv "$staging" "$out/bin"
fi
echo "$out/bin"
