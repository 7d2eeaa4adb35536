# netclaim at cluster scale (bench/scale/, docs/scale.md). bench-scale: 1000
# simulated nodes, each with netclaim's own slice publisher under its own
# identity, and pods with and without claims through the real scheduler, on a
# control plane of the newest release started for the run alone (its own
# state directory and ports, removed at the end), so the suites sharing this
# machine neither disturb its figures nor see its nodes. SCALE_NODES,
# SCALE_PODS, SCALE_STEADY_SECONDS, SCALE_LARGE_EVERY, SCALE_PFS and
# SCALE_VFS_PER_PF scale it down or change the hardware (docs/scale.md).
BENCHMARKS += bench-scale
.PHONY: bench-scale
bench-scale: deps cluster-build-newest
	K8S_VERSION=$(K8S_NEWEST) node bench/scale/scale.bench.ts

# bench-scale-node: the agent as its DaemonSet pod on the real node (as
# bench-podstart runs it) with 256 stand-in NICs and pods with one netclaim
# interface each churning for SCALE_NODE_MINUTES (default 10): RSS, prepare
# and attach latency from the agent's metrics, early against late.
BENCHMARKS += bench-scale-node
.PHONY: bench-scale-node
bench-scale-node: deps node-up image
	$(e2e_ENV) node bench/scale/node-churn.bench.ts
