/**
 * `netclaim doctor` in the agent's pod on the real node (issue 24), as the
 * docs tell an admin to run it (kubectl exec ... -- netclaim doctor):
 *
 * - on a working node every check passes and it exits 0, in text and in
 *   JSON (one document that parses);
 * - pointed at an NRI socket that is not there (the flag the agent takes),
 *   it fails that check naming the path and how to turn NRI on, and exits 1;
 * - with a verb taken out of the agent's ClusterRole, the RBAC check fails
 *   naming the verb and the resource, until the ClusterRole is restored.
 *
 * Whatever a test breaks it restores in a finally, and the Cleanup puts the
 * ClusterRole back even if the test process stops in between.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { createNicPair, E2eAgent, waitForPublished } from "./agent.ts";
import { Cleanup, NODE_RUNTIME, eventually, execInPod, kubectl, node, type CommandResult } from "./harness.ts";

const NIC_PREFIX = "ncdoc";
const CLUSTER_ROLE = "netclaim-agent";

const reportSchema = z.object({
  checks: z.array(z.object({ name: z.string(), status: z.enum(["PASS", "WARN", "FAIL"]), message: z.string(), fix: z.string().optional() })),
  summary: z.object({ pass: z.number(), warn: z.number(), fail: z.number() }),
});
type Report = z.infer<typeof reportSchema>;

const ruleSchema = z.looseObject({ apiGroups: z.array(z.string()), resources: z.array(z.string()), verbs: z.array(z.string()) });
const clusterRoleSchema = z.looseObject({ metadata: z.record(z.string(), z.unknown()), rules: z.array(ruleSchema) });
type ClusterRole = z.infer<typeof clusterRoleSchema>;

describe(`netclaim doctor in the agent's pod on ${NODE_RUNTIME}`, { timeout: 600_000 }, () => {
  const cleanup = new Cleanup();
  let agent: E2eAgent;

  before(async () => {
    await node();
    const wire = await createNicPair(`${NIC_PREFIX}a`, `${NIC_PREFIX}b`);
    cleanup.defer(() => wire.remove());
    agent = await E2eAgent.start({ nicGlob: `${NIC_PREFIX}*` });
    cleanup.defer(() => agent.remove());
    await waitForPublished(NIC_PREFIX, 2);
  });
  after(() => cleanup.run());

  function doctor(args: readonly string[] = []): Promise<CommandResult> {
    return execInPod(agent.pod.metadata.name, ["netclaim", "doctor", ...args], { namespace: agent.namespace });
  }

  async function doctorJson(args: readonly string[] = []): Promise<{ code: number; report: Report }> {
    const result = await doctor(["--output", "json", ...args]);
    return { code: result.code, report: reportSchema.parse(JSON.parse(result.stdout)) };
  }

  const notPassing = (report: Report): string[] => report.checks.filter((c) => c.status !== "PASS").map((c) => `${c.status} ${c.name}: ${c.message}`);

  it("passes every check on a working node, in text and in JSON", async () => {
    const { code, report } = await doctorJson();
    assert.deepEqual(notPassing(report), []);
    assert.equal(code, 0);
    const names = report.checks.map((c) => c.name);
    for (const name of ["NRI socket", "NRI validator", "kubelet registration", "CDI spec dir", "API server", "resource.k8s.io", "RBAC", "clock skew", "macvlan", "RDMA netns mode", "devices", "claim state", "attachment journal"]) {
      assert.ok(names.includes(name), `doctor checks ${name}`);
    }
    const nri = report.checks.find((c) => c.name === "NRI socket");
    assert.match(nri?.message ?? "", NODE_RUNTIME === "crio" ? /: cri-o / : /: containerd /, "names the runtime");
    assert.match(report.checks.find((c) => c.name === "devices")?.message ?? "", /publishes 2 of \d+: ncdoca, ncdocb/);
    assert.match(report.checks.find((c) => c.name === "kubelet registration")?.message ?? "", new RegExp(agent.pod.metadata.uid), "the sockets of the pod's UID");

    const text = await doctor();
    assert.equal(text.code, 0, text.stdout + text.stderr);
    assert.match(text.stdout, /^PASS {2}NRI socket /m);
    assert.match(text.stdout, /\n\d+ passed, 0 warnings, 0 failed\n$/);
  });

  it("fails the NRI check naming a socket that is not there, and the fix", async () => {
    const missing = "/run/netclaim-doctor-e2e/nri.sock";
    const { code, report } = await doctorJson(["--nri-socket", missing]);
    assert.equal(code, 1);
    const nri = report.checks.find((c) => c.name === "NRI socket");
    assert.equal(nri?.status, "FAIL");
    assert.equal(nri.message, `no NRI socket at ${missing}`);
    assert.match(nri.fix ?? "", /turn NRI on in the runtime/);
    assert.deepEqual(notPassing(report), [`FAIL NRI socket: no NRI socket at ${missing}`], "only the NRI check fails");
  });

  it("fails the RBAC check naming a verb taken out of the agent's ClusterRole", async () => {
    const original = clusterRoleSchema.parse(JSON.parse(await kubectl(["get", "clusterrole", CLUSTER_ROLE, "-o", "json"])));
    const restore = (): Promise<void> => replaceClusterRole(original);
    cleanup.defer(restore);
    const fewer: ClusterRole = {
      ...original,
      rules: original.rules.map((rule) => (rule.resources.includes("resourceslices") ? { ...rule, verbs: rule.verbs.filter((verb) => verb !== "delete") } : rule)),
    };
    try {
      await replaceClusterRole(fewer);
      let last: Report | undefined;
      await eventually("doctor to see the verb gone", async () => {
        const { code, report } = await doctorJson();
        last = report;
        return code === 1 && report.checks.some((c) => c.name === "RBAC" && c.status === "FAIL");
      });
      const denied = last?.checks.filter((c) => c.status === "FAIL") ?? [];
      assert.equal(denied.length, 1, JSON.stringify(denied));
      assert.equal(denied[0]?.name, "RBAC");
      assert.match(denied[0].message, /^system:serviceaccount:netclaim:netclaim-agent may not delete resourceslices \(resource\.k8s\.io\)/);
      assert.match(denied[0].fix ?? "", /^grant "delete" on resourceslices/);
    } finally {
      await restore();
    }
    await eventually("doctor to pass again with the ClusterRole restored", async () => (await doctor()).code === 0);
  });
});

/** Puts `role` in place as it is (no resourceVersion: the last write wins). */
async function replaceClusterRole(role: ClusterRole): Promise<void> {
  const metadata = Object.fromEntries(Object.entries(role.metadata).filter(([key]) => key !== "resourceVersion"));
  await kubectl(["replace", "-f", "-"], JSON.stringify({ ...role, apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata }));
}
