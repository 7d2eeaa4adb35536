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

# The scan a link event asks for against a full scan, on a host with as many
# links as a busy node (veths).
.PHONY: bench-inventory-scan
bench-inventory-scan: deps
	node bench/inventory/scan.bench.ts

BENCHMARKS += bench-inventory-scan
