# The node simulator (issue 7): the real control plane, the kubelet peer, the
# NRI runtime peer and real network namespaces around the real agent process.
TEST_SUITES += node
node_TESTS := 'test/node/**/*.test.ts'
node_PREREQS := cluster-up nri-peers dra-peers
