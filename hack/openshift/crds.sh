#!/usr/bin/env bash
# Puts OpenShift's CRDs into the cache, keyed by the openshift/api commit of
# versions.env, and prints their directory. They come from the peers archive
# (NETCLAIM_PEERS, default ../shared/peers next to the checkout); once cached,
# a fresh clone needs no archive.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck disable=SC1091
source "$here/versions.env"
cache=${NETCLAIM_CACHE:-$HOME/.cache/netclaim}
out="$cache/openshift-crds/$OPENSHIFT_API_COMMIT"
if [[ ! -f $out/stamp ]]; then
  peers=${NETCLAIM_PEERS:-$repo/../shared/peers}
  src="$peers/openshift-crds"
  if ! compgen -G "$src/*.crd.yaml" >/dev/null; then
    echo "openshift-crds: no CRDs in $src and none cached in $out: set NETCLAIM_PEERS to the peers archive (openshift/api $OPENSHIFT_API_COMMIT)" >&2
    exit 1
  fi
  mkdir -p "$out"
  cp "$src"/*.crd.yaml "$out/"
  echo "$OPENSHIFT_API_COMMIT" > "$out/stamp"
fi
echo "$out"
