# Root tests of the attach engine and netlink layer on the real kernel:
# throw-away network namespaces (nctest-*) with veth devices standing in for
# NICs. bench-attach compares the engine with the bare netlink move, `ip`
# and the CNI host-device plugin (hack/host-deps/netns.txt).
TEST_SUITES += netns
netns_TESTS := 'test/netns/**/*.test.ts'
netns_PREREQS :=

.PHONY: bench-attach
bench-attach: deps
	node bench/attach/attach.bench.ts

BENCHMARKS += bench-attach
