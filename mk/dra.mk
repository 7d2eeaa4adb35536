# DRA kubelet plugin suite: netclaim's registration, DRAPlugin v1/v1beta1,
# health stream and crash-safe claim state against the kubelet's own code
# (test/peers/kubelet: the plugin manager and DRA plugin manager of
# k8s.io/kubernetes), and the kubelet's ResourceSlice wiping against the test
# control plane.
#
# One peer per release of the version matrix (mk/api.mk): dra runs against the
# K8S_DEFAULT kubelet (test/peers/kubelet/v1.34.4/) and dra-newest, with
# K8S_VERSION=K8S_NEWEST, against the newest (test/peers/kubelet/v1.37.2/).
# Each version directory is a Go module pinned at that k8s.io/kubernetes that
# links the shared ../main.go in and adds its own kubelet.go for what that
# kubelet's API changed. The first build of a peer compiles much of the
# kubelet (docs/test-cluster.md has the times).
TEST_SUITES += dra dra-newest
dra_TESTS := 'test/dra/**/*.test.ts'
dra_PREREQS := dra-peers cluster-up
dra-newest_TESTS := $(dra_TESTS)
dra-newest_PREREQS := dra-peers-newest cluster-up-newest
dra-newest_ENV = K8S_VERSION=$(K8S_NEWEST)

.PHONY: dra-peers dra-peers-newest

# Warm hack/build-go.sh's cache; the tests ask it for the path (instant when
# cached, test/dra/kubelet-peer.ts). dra-peers builds K8S_VERSION's peer, by
# default K8S_DEFAULT's.
dra-peers:
	@v=$${K8S_VERSION:-$(K8S_DEFAULT)}; hack/build-go.sh test/peers/kubelet/$$v . kubelet-peer-$$v >/dev/null

dra-peers-newest:
	@hack/build-go.sh test/peers/kubelet/$(K8S_NEWEST) . kubelet-peer-$(K8S_NEWEST) >/dev/null

BENCHMARKS += bench-dra
.PHONY: bench-dra
bench-dra: deps dra-peers
	node bench/dra/prepare.ts
