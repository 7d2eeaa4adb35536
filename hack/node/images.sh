#!/usr/bin/env bash
# Builds the test node's two images offline, as OCI archives in the cache:
#   pause:   our pause binary (hack/node/pause), the sandbox image
#   busybox: Debian's busybox-static (sh, ip, ping, nc), for test pods
# and prints the directory holding pause.tar and busybox.tar. Uses umoci and
# skopeo from Debian; nothing is pulled from a registry.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache=${NETCLAIM_CACHE:-$HOME/.cache/netclaim}
pause_bin=$("$here/../build-go.sh" "$here/pause" . pause)
key=$( (sha256sum "$pause_bin" /bin/busybox "$0"; umoci --version) | sha256sum | cut -c1-16)
out="$cache/images/$key"
if [[ ! -f $out/pause.tar || ! -f $out/busybox.tar ]]; then
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  build() { # name rootfs-populating-function entrypoint|cmd args...
    local name=$1 populate=$2 kind=$3; shift 3
    umoci init --layout "$work/$name"
    umoci new --image "$work/$name:latest"
    umoci unpack --rootless --image "$work/$name:latest" "$work/$name-bundle" >/dev/null
    "$populate" "$work/$name-bundle/rootfs"
    umoci repack --image "$work/$name:latest" "$work/$name-bundle"
    local args=()
    for a in "$@"; do args+=("--config.$kind" "$a"); done
    umoci config --image "$work/$name:latest" "${args[@]}" --config.env PATH=/bin:/usr/bin:/sbin:/usr/sbin
    skopeo copy --quiet "oci:$work/$name:latest" "oci-archive:$work/$name.tar:registry.local/netclaim/$name:latest"
  }
  pause_rootfs() { install -m 0755 "$pause_bin" "$1/pause"; }
  busybox_rootfs() {
    mkdir -p "$1/bin" "$1/tmp" "$1/etc"
    install -m 0755 /bin/busybox "$1/bin/busybox"
    for applet in $(/bin/busybox --list); do [[ -e $1/bin/$applet ]] || ln -s busybox "$1/bin/$applet"; done
    echo "root:x:0:0:root:/:/bin/sh" > "$1/etc/passwd"
  }
  build pause pause_rootfs entrypoint /pause
  # Like Docker's busybox: no entrypoint, so a pod's `args` alone run as given.
  build busybox busybox_rootfs cmd /bin/sh
  mkdir -p "$out"
  mv "$work/pause.tar" "$work/busybox.tar" "$out/"
fi
echo "$out"
