# Tests against a real Kubernetes control plane (etcd, kube-apiserver,
# kube-scheduler, kube-controller-manager) built from the pinned Go modules in
# hack/cluster/modules/ and run on loopback by hack/cluster/cluster.sh. The
# build is cached in $(NETCLAIM_CACHE)/k8s/<version>; a warm run starts the
# cluster in seconds, or reuses a running one.
#
# The version matrix (docs/test-cluster.md): the api, dra and node suites run
# on K8S_DEFAULT (hack/cluster/versions.env, the oldest supported release),
# and again as api-newest, dra-newest and node-newest, each in a node:test run
# of its own with K8S_VERSION=K8S_NEWEST in the environment: there the tests'
# cluster() is the newest release's control plane (beside the default one:
# its own directory and ports) and the kubelet peer is the newest kubelet's
# (test/peers/kubelet/<version>/, mk/dra.mk). A test whose expectations
# differ by release branches on the run's release, so each run checks its own.
TEST_SUITES += api api-newest
api_TESTS := 'test/api/**/*.test.ts'
api_PREREQS := cluster-up cluster-build-newest openshift-crds
api-newest_TESTS := $(api_TESTS)
api-newest_PREREQS := cluster-up-newest openshift-crds
api-newest_ENV = K8S_VERSION=$(K8S_NEWEST)

# The releases, read from hack/cluster/versions.env, the one place they are
# written. A recipe builds or starts a release by putting K8S_VERSION in the
# script's environment.
K8S_DEFAULT := $(shell . hack/cluster/versions.env && echo "$$K8S_DEFAULT")
K8S_NEWEST := $(shell . hack/cluster/versions.env && echo "$$K8S_NEWEST")

.PHONY: cluster-build cluster-build-newest cluster-up cluster-up-newest cluster-down openshift-crds bench-slices
cluster-build:
	hack/cluster/build.sh >/dev/null

cluster-build-newest:
	K8S_VERSION=$(K8S_NEWEST) hack/cluster/build.sh >/dev/null

# OpenShift's CRDs into the cache (test/api/openshift.test.ts; hack/openshift/versions.env).
openshift-crds:
	hack/openshift/crds.sh >/dev/null

cluster-up: cluster-build
	hack/cluster/cluster.sh up

cluster-up-newest: cluster-build-newest
	K8S_VERSION=$(K8S_NEWEST) hack/cluster/cluster.sh up

cluster-down:
	hack/cluster/cluster.sh down
	K8S_VERSION=$(K8S_NEWEST) hack/cluster/cluster.sh down

BENCHMARKS += bench-slices
bench-slices: deps cluster-up
	node --expose-gc bench/slices/slices.bench.ts
