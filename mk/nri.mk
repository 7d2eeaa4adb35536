# NRI plugin conformance suite: netclaim's TypeScript NRI plugin against the
# runtime side of NRI (containerd/nri pkg/adaptation) at v0.8 and v0.12, plus
# the RunPodSandbox round-trip benchmark against a Go pkg/stub plugin.
TEST_SUITES += nri
nri_TESTS := 'test/nri/**/*.test.ts'
nri_PREREQS := nri-peers

BENCHMARKS += bench-nri

.PHONY: nri-peers bench-nri

# Warms hack/build-go.sh's cache; the tests ask it for the paths (instant when cached).
nri-peers:
	@hack/build-go.sh test/peers/nri-runtime/v0.8 . nri-runtime-v0.8 >/dev/null
	@hack/build-go.sh test/peers/nri-runtime/v0.12 . nri-runtime-v0.12 >/dev/null
	@hack/build-go.sh test/peers/nri-stub . nri-stub >/dev/null

bench-nri: deps nri-peers
	node bench/nri/run-pod-sandbox.ts
