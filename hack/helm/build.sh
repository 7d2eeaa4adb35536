#!/usr/bin/env bash
# Builds helm from its Go module (helm.sh/helm/v4/cmd/helm at HELM_VERSION,
# hack/helm/versions.env) into a cache outside the checkout, and prints the
# binary's path:
#
#   hack/helm/build.sh   -> $NETCLAIM_CACHE/helm/<version>/bin/helm
#
# The stamp hashes the version, the Go version and this script (its build
# flags), so a warm cache returns at once and any change rebuilds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
cache=${NETCLAIM_CACHE:-$HOME/.cache/netclaim}
out="$cache/helm/$HELM_VERSION"
key=$( (echo "$HELM_VERSION"; go version; cat "$here/build.sh") | sha256sum | cut -c1-16)

if [[ "$(cat "$out/stamp" 2>/dev/null)" != "$key" || ! -x $out/bin/helm ]]; then
  echo "helm-build: building helm $HELM_VERSION into $out/bin (cold: a few minutes)" >&2
  [[ $HELM_VERSION =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || { echo "helm-build: not a release: $HELM_VERSION" >&2; exit 1; }
  # What helm's own Makefile stamps in (no commit: the module has none);
  # without it `helm version` prints only the source's default (v4.3).
  ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  staging="$out/bin.tmp"
  rm -rf "$staging" && mkdir -p "$staging"
  # `go install module@version` builds exactly the release's go.mod/go.sum,
  # outside any module of ours, checked against the checksum database.
  (
    cd "$staging"
    export CGO_ENABLED=0 GOBIN="$staging" GOFLAGS=-buildvcs=false
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  )
  "$staging/helm" version >/dev/null
  rm -rf "$out/bin" && mv "$staging" "$out/bin"
  echo "$key" > "$out/stamp"
fi
echo "$out/bin/helm"
