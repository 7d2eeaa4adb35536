# The agent's OCI image, built offline and reproducibly by hack/image/build.sh
# from Debian packages (mmdebstrap), the pinned Node, dist/ and the locked
# production dependencies: build/image/oci (OCI layout) and
# build/image/netclaim.tar (docker-archive, `ctr images import`, `podman load`).
# See docs/image.md. Needs root and hack/host-deps/image.txt.
.PHONY: image
image: host-deps build
	hack/image/build.sh
