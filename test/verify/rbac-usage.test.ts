/**
 * Least privilege, checked against what the agent really does: every verb of
 * the shipped ClusterRole was used by the agent's ServiceAccount during this
 * test run, and nothing it did needed more.
 *
 * The evidence is the test control plane's audit log (hack/cluster/cluster.sh
 * records every request of that ServiceAccount): the api suite runs the slice
 * publisher and the claim status writes with the agent's pod-bound token, the
 * node suite the whole agent process, and the e2e suite the installed agent,
 * with the network-status opt-in (deploy/components/network-status) in
 * test/e2e/network-status.test.ts, on both releases' control planes. So this
 * suite runs after all of them (a final suite, mk/verify.mk).
 * NETCLAIM_TEST_SINCE (set by the Makefile when `make test` starts) keeps
 * requests of earlier runs out.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { cluster } from "../api/harness.ts";
import { agentRequests, compare, grantedPermissions, permission, type AgentRequests } from "./rbac-usage.ts";

const repo = new URL("../../", import.meta.url).pathname;

async function evidence(): Promise<{ granted: Set<string>; requests: AgentRequests }> {
  const since = process.env["NETCLAIM_TEST_SINCE"];
  assert.ok(since !== undefined && !Number.isNaN(Date.parse(since)), "NETCLAIM_TEST_SINCE is not set: run this suite through make (make test), after the api and node suites");
  const logs = [(await cluster("default")).auditLog, (await cluster("newest")).auditLog];
  const requests = await agentRequests(logs, new Date(since));
  assert.ok(requests.count > 0, `no request of the agent's ServiceAccount since ${since} in ${logs.join(", ")}: the api and node suites must run first`);
  // The opt-in's ClusterRole counts too: test/e2e/network-status.test.ts turns it on.
  const granted = new Set<string>();
  for (const file of ["deploy/base/rbac.yaml", "deploy/components/network-status/rbac.yaml"]) {
    for (const p of grantedPermissions(await readFile(`${repo}${file}`, "utf8"))) granted.add(p);
  }
  return { granted, requests };
}

describe("the agent's RBAC", () => {
  it("grants exactly the verbs the agent used in the api and node suites", async () => {
    const { granted, requests } = await evidence();
    assert.deepEqual([...requests.refused], [], "requests of the agent that RBAC refused");
    assert.deepEqual(compare(granted, requests.used), { missing: [], unused: [] });
  });

  it("would report a verb added to the ClusterRole as unused and a removed one as missing", async () => {
    const { granted, requests } = await evidence();
    const added = permission("resource.k8s.io", "resourceclaims", "list");
    assert.ok(!granted.has(added), "the example verb is not granted today");
    assert.deepEqual(compare(new Set([...granted, added]), requests.used).unused, [added]);
    const removed = permission("resource.k8s.io", "resourceclaims/status", "patch");
    const fewer = new Set(granted);
    fewer.delete(removed);
    assert.deepEqual(compare(fewer, requests.used).missing, [removed]);
  });
});
