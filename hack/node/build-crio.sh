#!/usr/bin/env bash
# Builds CRI-O (crio, pinns) and its image copier (copyimg) from the peers
# archive into a cache outside the checkout, and prints the bin directory:
#
#   hack/node/build-crio.sh   -> $NETCLAIM_CACHE/node/crio-<version>/bin
#
# The archive is a `git archive` of the tag with vendor/ (NETCLAIM_PEERS,
# default ../shared/peers next to the checkout); once cached, a fresh clone
# needs no archive. Build tags leave out what needs C libraries this machine
# lacks (gpgme, ostree, btrfs); seccomp stays, from Debian's libseccomp-dev.
# conmon and runc come from Debian (hack/host-deps/e2e.txt).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
source "$here/../lib/peers.sh"
cache=${NETCLAIM_CACHE:-$HOME/.cache/netclaim}
out="$cache/node/crio-$CRIO_VERSION"
binaries=(crio pinns copyimg)
built() { for b in "${binaries[@]}"; do [[ -x $out/bin/$b ]] || return 1; done; }
if ! built; then
  archive=$(peer_path "cri-o-$CRIO_VERSION.tar.gz" "$out" crio-build)
  echo "crio-build: building CRI-O $CRIO_VERSION into $out/bin (about 3 minutes)" >&2
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  tar -xzf "$archive" -C "$work"
  src="$work/cri-o-$CRIO_VERSION"
  sqlite=$(go mod download -json "github.com/mattn/go-sqlite3@$CRIO_SQLITE3_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  install -m 0644 "$sqlite/sqlite3-binding.c" "$src/vendor/github.com/mattn/go-sqlite3/sqlite3-binding.c"
  staging="$out/bin.tmp"
  rm -rf "$staging" && mkdir -p "$staging"
  tags="containers_image_ostree_stub containers_image_openpgp exclude_graphdriver_btrfs btrfs_noversion seccomp"
  (cd "$src" && GOFLAGS=-mod=vendor CGO_ENABLED=1 go build -trimpath -tags "$tags" -o "$staging/crio" ./cmd/crio)
  (cd "$src" && GOFLAGS=-mod=vendor CGO_ENABLED=1 go build -trimpath -tags "$tags" -o "$staging/copyimg" ./test/copyimg)
  make -s -C "$src/pinns" >/dev/null
  install -m 0755 "$src/bin/pinns" "$staging/pinns"
  rm -rf "$out/bin" && mv "$staging" "$out/bin"
fi
echo "$out/bin"
