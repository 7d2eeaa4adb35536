# Tests against a real Kubernetes control plane (etcd, kube-apiserver,
# kube-scheduler, kube-controller-manager) built from the pinned Go modules in
# hack/cluster/modules/ and run on loopback by hack/cluster/cluster.sh. The
# build is cached in $(NETCLAIM_CACHE)/k8s/<version>; a warm run starts the
# cluster in seconds, or reuses a running one. The tests of what newer
# releases changed also start the newest release's control plane beside it.
TEST_SUITES += api
api_TESTS := 'test/api/**/*.test.ts'
api_PREREQS := cluster-up cluster-build-newest openshift-crds

.PHONY: cluster-build cluster-build-newest cluster-up cluster-down openshift-crds bench-slices
cluster-build:
	hack/cluster/build.sh >/dev/null

cluster-build-newest:
	source hack/cluster/versions.env && K8S_VERSION=$$K8S_NEWEST hack/cluster/build.sh >/dev/null

# OpenShift's CRDs into the cache (test/api/openshift.test.ts; hack/openshift/versions.env).
openshift-crds:
	hack/openshift/crds.sh >/dev/null

cluster-up: cluster-build
	hack/cluster/cluster.sh up

cluster-down:
	hack/cluster/cluster.sh down
	source hack/cluster/versions.env && K8S_VERSION=$$K8S_NEWEST hack/cluster/cluster.sh down

BENCHMARKS += bench-slices
bench-slices: deps cluster-up
	node --expose-gc bench/slices/slices.bench.ts
