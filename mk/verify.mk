# Checks over what the other suites recorded: the RBAC usage test reads the
# test control plane's audit log of the agent's requests. Node's test runner
# runs files in path order and test/verify sorts last, so in `make test` it
# sees every other suite's requests. On its own: NETCLAIM_TEST_SINCE=<RFC 3339
# time of a run's start> make test-verify.
TEST_SUITES += verify
verify_TESTS := 'test/verify/**/*.test.ts'
verify_PREREQS := cluster-up cluster-build-newest
