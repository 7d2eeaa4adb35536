# NRI plugin conformance suite: netclaim's TypeScript NRI plugin against the
# runtime side of NRI (containerd/nri pkg/adaptation) at every version a supported
# runtime embeds (v0.8, v0.10, v0.11, v0.12; test/nri/runtime-peer.ts), plus
# the RunPodSandbox round-trip benchmark against a Go pkg/stub plugin.
TEST_SUITES += nri
nri_TESTS := 'test/nri/**/*.test.ts'
nri_PREREQS := nri-peers

BENCHMARKS += bench-nri

.PHONY: nri-peers bench-nri

# Warms hack/build-go.sh's cache; the tests ask it for the paths (instant when cached).
nri-peers:
	@for v in v0.8 v0.10 v0.11 v0.12; do hack/build-go.sh test/peers/nri-runtime/$$v . nri-runtime-$$v >/dev/null; done
	@hack/build-go.sh test/peers/nri-stub . nri-stub >/dev/null

bench-nri: deps nri-peers
	node bench/nri/run-pod-sandbox.ts
