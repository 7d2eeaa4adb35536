#!/usr/bin/env bash
# Builds Multus (the thin plugin `multus`, and the thick plugin's `multus-daemon`
# and `multus-shim`) from the peers archive into a cache outside the checkout,
# and prints the bin directory:
#
#   hack/node/build-multus.sh   -> $NETCLAIM_CACHE/node/multus-<commit>/bin
#
# The archive is a `git archive` of MULTUS_COMMIT with vendor/ (NETCLAIM_PEERS,
# default ../shared/peers next to the checkout), so it builds offline; once
# cached, a fresh clone needs no archive. No release has Multus's DRA path yet,
# and the module proxy serves none of its commits (see versions.env).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
source "$here/../lib/peers.sh"
cache=${NETCLAIM_CACHE:-$HOME/.cache/netclaim}
out="$cache/node/multus-$MULTUS_COMMIT"
binaries=(multus multus-daemon multus-shim)
built() { for b in "${binaries[@]}"; do [[ -x $out/bin/$b ]] || return 1; done; }
if ! built; then
  name="multus-cni-${MULTUS_COMMIT:0:9}"
  archive=$(peer_path "$name.tar.gz" "$out" multus-build)
  echo "multus-build: building Multus ${MULTUS_COMMIT:0:9} (multus, multus-daemon, multus-shim) into $out/bin (about 2 minutes)" >&2
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  tar -xzf "$archive" -C "$work"
  staging="$out/bin.tmp"
  rm -rf "$staging" && mkdir -p "$staging"
  for b in "${binaries[@]}"; do
    (cd "$work/$name" && GOFLAGS=-mod=vendor CGO_ENABLED=0 go build -trimpath -o "$staging/$b" "./cmd/$b")
  done
  rm -rf "$out/bin" && mv "$staging" "$out/bin"
fi
echo "$out/bin"
