#!/usr/bin/env bash
# Puts OpenShift's CRDs into the cache, keyed by the openshift/api commit of
# versions.env, and prints their directory. They come from the peers archive
# (NETCLAIM_PEERS, default ../shared/peers next to the checkout); once cached,
# a fresh clone needs no archive.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck disable=SC1091
source "$here/versions.env"
source "$here/../lib/peers.sh"
cache=${NETCLAIM_CACHE:-$HOME/.cache/netclaim}
out="$cache/openshift-crds/$OPENSHIFT_API_COMMIT"
if [[ ! -f $out/stamp ]]; then
  src=$(peer_path openshift-crds "$out" openshift-crds)
  mkdir -p "$out"
  cp "$src"/*.crd.yaml "$out/"
  echo "$OPENSHIFT_API_COMMIT" > "$out/stamp"
fi
echo "$out"
