# End-to-end tests on a real node: the kubelet, containerd (NRI on), runc and
# Multus (thin plugin, or thick with NETCLAIM_MULTUS=thick) on this machine,
# registered with the test control plane (hack/cluster). hack/node/node.sh
# brings the node up in seconds once the builds are cached (containerd,
# crictl, Multus in $(NETCLAIM_CACHE)/node, the
# pause and busybox images in $(NETCLAIM_CACHE)/images), and reuses a Ready
# node. `make node-down` stops it and leaves the host as it found it. The
# agent's image (`make image`) is imported into the node's containerd for the
# test that installs the agent as shipped (test/e2e/installed.test.ts).
#
# The suite runs once per container runtime: on containerd (suite e2e) and on
# CRI-O as OpenShift runs it (suite e2e-crio, NETCLAIM_NODE_RUNTIME=crio; CRI-O
# built from the peers archive by hack/node/build-crio.sh). Both nodes may be
# up at once (hack/node/node.sh keeps them apart).
TEST_SUITES += e2e e2e-crio
e2e_TESTS := 'test/e2e/**/*.test.ts'
e2e_PREREQS := node-up image helm-build
e2e-crio_TESTS := $(e2e_TESTS)
e2e-crio_PREREQS := node-up-crio image helm-build
e2e-crio_ENV := NETCLAIM_NODE_RUNTIME=crio

BENCHMARKS += bench-podstart

.PHONY: node-build node-up node-down node-up-crio node-down-crio bench-podstart

node-build: cluster-build
	hack/node/build.sh >/dev/null
	hack/node/build-multus.sh >/dev/null
	hack/node/images.sh >/dev/null

node-up: node-build
	hack/node/node.sh up

node-down:
	hack/node/node.sh down

node-up-crio: node-build
	hack/node/build-crio.sh >/dev/null
	NETCLAIM_NODE_RUNTIME=crio hack/node/node.sh up

node-down-crio:
	NETCLAIM_NODE_RUNTIME=crio hack/node/node.sh down

bench-podstart: deps node-up image
	node bench/podstart/podstart.bench.ts
