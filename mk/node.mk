# The node simulator (issue 7): the real control plane, the kubelet peer, the
# NRI runtime peer and real network namespaces around the real agent process.
# node runs on K8S_DEFAULT's control plane and kubelet, node-newest (with
# K8S_VERSION=K8S_NEWEST) on the newest release's (the version matrix, mk/api.mk).
TEST_SUITES += node node-newest
node_TESTS := 'test/node/**/*.test.ts'
node_PREREQS := cluster-up nri-peers dra-peers
node-newest_TESTS := $(node_TESTS)
node-newest_PREREQS := cluster-up-newest nri-peers dra-peers-newest
node-newest_ENV = K8S_VERSION=$(K8S_NEWEST)
