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
# The suite runs once per container runtime, each at one end of the supported
# Kubernetes releases (the version matrix, docs/test-cluster.md): on
# containerd with kubelet and control plane at K8S_NEWEST (suite e2e), and on
# CRI-O as OpenShift 4.21 runs it, at K8S_DEFAULT (suite e2e-crio,
# NETCLAIM_NODE_RUNTIME=crio; CRI-O built from the peers archive by
# hack/node/build-crio.sh). Both nodes may be up at once (hack/node/node.sh
# keeps them apart). By hand: `K8S_VERSION=<newest> node --test test/e2e/...`
# on the containerd node, as `make node-up` brought it up.
TEST_SUITES += e2e e2e-crio
e2e_TESTS := 'test/e2e/**/*.test.ts'
e2e_PREREQS := node-up image helm-build
e2e_ENV = K8S_VERSION=$(K8S_NEWEST)
e2e-crio_TESTS := $(e2e_TESTS)
e2e-crio_PREREQS := node-up-crio image helm-build
e2e-crio_ENV := NETCLAIM_NODE_RUNTIME=crio

BENCHMARKS += bench-podstart

.PHONY: node-build node-up node-down node-up-crio node-down-crio bench-podstart

node-build: cluster-build cluster-build-newest
	hack/node/build.sh >/dev/null
	hack/node/build-multus.sh >/dev/null
	hack/node/images.sh >/dev/null

node-up: node-build
	$(e2e_ENV) hack/node/node.sh up

node-down:
	hack/node/node.sh down

node-up-crio: node-build
	hack/node/build-crio.sh >/dev/null
	NETCLAIM_NODE_RUNTIME=crio hack/node/node.sh up

node-down-crio:
	NETCLAIM_NODE_RUNTIME=crio hack/node/node.sh down

bench-podstart: deps node-up image
	$(e2e_ENV) node bench/podstart/podstart.bench.ts

# From NRI RunPodSandbox to a configured interface (bench/nri-attach): netclaim
# against a bare move made inside RunPodSandbox, timed by an observer NRI plugin.
BENCHMARKS += bench-nri-attach
.PHONY: bench-nri-attach
bench-nri-attach: deps node-up image
	$(e2e_ENV) node bench/nri-attach/nri-attach.bench.ts
