#!/usr/bin/env bash
# Builds a Go test peer once per content and caches the binary outside the
# checkout, so a fresh clone (CI) reuses it.
#
#   hack/build-go.sh <module-dir> <package> <name>   -> prints the binary path
#
# The cache key hashes the module's go.mod, go.sum and Go sources plus the Go
# version, so any change rebuilds and nothing stale is ever reused.
set -euo pipefail
module_dir=$1 package=$2 name=$3
cache=${NETCLAIM_CACHE:-$HOME/.cache/netclaim}
key=$( (go version; cd "$module_dir" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16)
out="$cache/bin/$name-$key"
if [[ ! -x "$out" ]]; then
  mkdir -p "$cache/bin"
  echo "build-go: building $name ($module_dir $package)" >&2
  (cd "$module_dir" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp" "$package")
  mv "$out.tmp" "$out"
fi
echo "$out"
