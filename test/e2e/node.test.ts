/**
 * The real node itself: registered and Ready with the control plane's
 * kubelet, kept apart from other suites by its taint, and reachable from the
 * API server for `kubectl logs` and `kubectl exec` (which the other e2e tests
 * rely on to look inside pods).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { Cleanup, NODE_RUNTIME, NODE_TAINT_KEY, RUNTIME_IDENTITY, apply, busyboxPod, deletePods, execInPod, kubectl, kubectlJson, node, uniqueName, waitForPodsReady } from "./harness.ts";

const nodeSchema = z.object({
  spec: z.object({ taints: z.array(z.object({ key: z.string(), effect: z.string() })).optional() }),
  status: z.object({
    conditions: z.array(z.object({ type: z.string(), status: z.string() })),
    addresses: z.array(z.object({ type: z.string(), address: z.string() })),
    nodeInfo: z.object({ kubeletVersion: z.string(), containerRuntimeVersion: z.string() }),
  }),
});

describe("the e2e node", () => {
  const cleanup = new Cleanup();
  const podName = uniqueName("e2e-node");

  before(async () => {
    await node();
    cleanup.defer(() => deletePods([podName]));
    await apply(busyboxPod({ name: podName, container: { command: ["/bin/sh", "-c", "echo hello from $(hostname); trap 'exit 0' TERM; sleep 86400 & wait"] } }));
    await waitForPodsReady([podName]);
  });
  after(() => cleanup.run());

  it(`is Ready, runs ${NODE_RUNTIME}, carries its NoSchedule taint and has the node IP`, async () => {
    const env = await node();
    const object = await kubectlJson(["get", "node", env.nodeName], nodeSchema);
    assert.equal(object.status.conditions.find((c) => c.type === "Ready")?.status, "True");
    assert.match(object.status.nodeInfo.containerRuntimeVersion, RUNTIME_IDENTITY.criVersion);
    assert.deepEqual(object.spec.taints?.map((t) => [t.key, t.effect]), [[NODE_TAINT_KEY, "NoSchedule"]]);
    assert.ok(object.status.addresses.some((a) => a.type === "InternalIP" && a.address === env.nodeIp));
  });

  it("runs the kubelet of the control plane's Kubernetes release", async () => {
    const env = await node();
    const object = await kubectlJson(["get", "node", env.nodeName], nodeSchema);
    const server = z.object({ serverVersion: z.object({ gitVersion: z.string() }) }).parse(JSON.parse(await kubectl(["version", "-o", "json"])));
    assert.equal(object.status.nodeInfo.kubeletVersion, server.serverVersion.gitVersion);
  });

  it("serves kubectl logs and kubectl exec through the API server", async () => {
    assert.equal((await kubectl(["logs", podName])).trim(), `hello from ${podName}`);
    const result = await execInPod(podName, ["cat", "/proc/1/cmdline"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /sleep 86400/);
    const failing = await execInPod(podName, ["sh", "-c", "exit 3"]);
    assert.equal(failing.code, 3);
  });
});
