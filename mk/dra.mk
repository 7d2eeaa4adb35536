# DRA kubelet plugin suite: netclaim's registration, DRAPlugin v1/v1beta1,
# health stream and crash-safe claim state against the kubelet's own code
# (test/peers/kubelet: k8s.io/kubernetes v1.34 plugin manager and DRA plugin
# manager), and the kubelet's ResourceSlice wiping against the test control
# plane. The first build of the peer compiles much of the kubelet.
TEST_SUITES += dra
dra_TESTS := 'test/dra/**/*.test.ts'
dra_PREREQS := dra-peers cluster-up

.PHONY: dra-peers

# Warms hack/build-go.sh's cache; the tests ask it for the path (instant when cached).
dra-peers:
	@hack/build-go.sh test/peers/kubelet . kubelet-peer >/dev/null

BENCHMARKS += bench-dra
.PHONY: bench-dra
bench-dra: deps dra-peers
	node bench/dra/prepare.ts
