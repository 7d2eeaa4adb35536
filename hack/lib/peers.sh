# shellcheck shell=bash
# Sourced by the scripts that build test peers from ../shared/peers: upstream
# sources the module proxy does not serve (its README names each). They are
# read only to fill a cache outside the checkout, keyed by version; once a
# build is cached, a fresh clone needs no peers directory.

# The path of `name` in the peers directory (NETCLAIM_PEERS, default
# ../shared/peers next to the checkout); exits with what to set when it is
# missing, since `cache` (the caller's output) is not filled either.
peer_path() { # name cache label
  local repo peers
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  peers=${NETCLAIM_PEERS:-$repo/../shared/peers}
  if [[ ! -e $peers/$1 ]]; then
    echo "$3: $peers/$1 is missing and nothing is cached in $2: set NETCLAIM_PEERS to the directory holding $1" >&2
    exit 1
  fi
  echo "$peers/$1"
}
