# Checks over what the other suites recorded: the RBAC usage test reads the
# test control planes' audit logs of the agent's requests. A final suite, it
# runs after every other run of `make test` (the -newest and e2e suites run
# on their own), so it sees every suite's requests on both releases. On its
# own: NETCLAIM_TEST_SINCE=<RFC 3339 time of a run's start> make test-verify.
FINAL_SUITES += verify
verify_TESTS := 'test/verify/**/*.test.ts'
verify_PREREQS := cluster-up cluster-build-newest
