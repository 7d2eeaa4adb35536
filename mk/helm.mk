# The Helm chart deploy/helm/netclaim against the kustomize overlays it mirrors
# (test/helm): `helm template` with the default values and with
# openshift=true must render the objects `kubectl kustomize` builds from
# deploy/overlays/kubernetes and deploy/overlays/openshift, and `helm lint`
# must pass. helm is built from its Go module at hack/helm/versions.env's
# HELM_VERSION into $(NETCLAIM_CACHE)/helm/<version>; kubectl comes from the
# test control plane's build (hack/cluster/build.sh). No cluster is started.
TEST_SUITES += helm
helm_TESTS := 'test/helm/**/*.test.ts'
helm_PREREQS := helm-build cluster-build

.PHONY: helm-build helm-lint

# Warms the cache; the tests ask hack/helm/build.sh for the path (instant when cached).
helm-build:
	hack/helm/build.sh >/dev/null

helm-lint: helm-build
	"$$(hack/helm/build.sh)" lint --strict deploy/helm/netclaim
	"$$(hack/helm/build.sh)" lint --strict deploy/helm/netclaim --set openshift=true
