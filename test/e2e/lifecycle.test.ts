/**
 * Acceptance tests 4 to 7 on the real node: the interface survives container,
 * agent, containerd and kubelet restarts; pods beyond the node's devices wait
 * Pending and run once a device frees up; a pod created while the agent is
 * down does not start without its interface and starts with it once the
 * agent is back.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { agentEndpoint, claimFields, claimTemplateFor, counterValue, createNicPair, deviceClassFor, E2eAgent, waitForPublished } from "./agent.ts";
import {
  Cleanup,
  apply,
  busyboxPod,
  crictl,
  deleteObjects,
  deletePods,
  eventually,
  getPod,
  node,
  restartNodeComponent,
  runCommand,
  uniqueName,
  waitForPodsReady,
  type Manifest,
  podInterface,
} from "./harness.ts";

const NIC_PREFIX = "nce2l";


/** Polls /readyz until stopped, keeping every answer. */
function watchReadiness(): { stop(): { status: number; body: string }[] } {
  const seen: { status: number; body: string }[] = [];
  const stopped = new AbortController();
  void (async () => {
    while (!stopped.signal.aborted) {
      seen.push(await agentEndpoint("/readyz"));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return {
    stop: () => {
      stopped.abort();
      return seen;
    },
  };
}

/** Successful prepares and attaches the agent has counted since it started. */
async function operations(): Promise<{ prepare: number; attach: number }> {
  const text = (await agentEndpoint("/metrics")).body;
  return {
    prepare: counterValue(text, "netclaim_dra_claim_operations_total", 'operation="prepare",status="success"'),
    attach: counterValue(text, "netclaim_engine_operations_total", 'operation="attach",status="success"'),
  };
}

describe("netclaim interfaces across restarts and scarcity (acceptance 4-7)", { timeout: 600_000 }, () => {
  const cleanup = new Cleanup();
  const deviceClass = uniqueName("e2e-lc");
  const template = uniqueName("e2e-lc");
  const [first, second, third, fourth] = ["e2e-lc-1", "e2e-lc-2", "e2e-lc-3", "e2e-lc-4"].map(uniqueName) as [string, string, string, string];
  const nics = [`${NIC_PREFIX}a`, `${NIC_PREFIX}b`];
  let agent: E2eAgent;

  const podWithClaim = (name: string): Manifest => busyboxPod({ name, ...claimFields(template) });

  before(async () => {
    await node();
    const wire = await createNicPair(nics[0] ?? "", nics[1] ?? "");
    cleanup.defer(() => wire.remove());
    agent = await E2eAgent.start({ nicGlob: `${NIC_PREFIX}*` });
    cleanup.defer(() => agent.remove());
    await apply(
      deviceClassFor(deviceClass, NIC_PREFIX),
      claimTemplateFor(template, deviceClass, { interface: { name: "dra0", mtu: 1300, addresses: ["fd00:1c::1/64"] } }),
    );
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    cleanup.defer(() => deleteObjects("resourceclaimtemplates.resource.k8s.io", [template]));
    cleanup.defer(() => deletePods([first, second, third, fourth]));
    await waitForPublished(NIC_PREFIX, nics.length);
    await apply(podWithClaim(first));
    await waitForPodsReady([first]);
  });
  after(() => cleanup.run());

  it("keeps the interface configured across a container restart and an agent restart (4)", async () => {
    const before = await podInterface(first);
    assert.equal(before?.mtu, 1300);
    assert.deepEqual(before.addresses, ["fd00:1c::1/64"]);
    const container = (await crictl(["ps", "--label", `io.kubernetes.pod.name=${first}`, "-q"])).trim();
    await crictl(["stop", container]);
    await eventually("the kubelet to restart the container", async () => ((await getPod(first)).status.phase === "Running" ? (await crictl(["ps", "--label", `io.kubernetes.pod.name=${first}`, "-q"])).trim() !== container : false), 60_000);
    assert.equal((await podInterface(first))?.mtu, 1300, "dra0 survives the container restart");

    await agent.stop();
    await agent.start();
    assert.deepEqual((await podInterface(first))?.addresses, ["fd00:1c::1/64"], "dra0 survives the agent restart");
    await agent.stop("SIGKILL");
    await agent.start();
    assert.deepEqual((await podInterface(first))?.addresses, ["fd00:1c::1/64"], "dra0 survives kill -9 of the agent");
  });

  it("keeps running pods' interfaces across containerd and kubelet restarts, and new pods still work (7)", async () => {
    // The agent's readiness follows its NRI connection, which a containerd restart breaks.
    const readiness = watchReadiness();
    await restartNodeComponent("runtime");
    await eventually("the agent ready again after the containerd restart", async () => (await agentEndpoint("/readyz")).status === 200, 30_000);
    const seen = readiness.stop();
    assert.ok(seen.some((r) => r.status === 503 && r.body.includes("connected to NRI")), `/readyz said ${JSON.stringify([...new Set(seen.map((r) => `${String(r.status)} ${r.body.trim()}`))])} during the restart`);
    assert.equal((await podInterface(first))?.mtu, 1300, "dra0 survives the containerd restart");
    await restartNodeComponent("kubelet");
    assert.equal((await podInterface(first))?.mtu, 1300, "dra0 survives the kubelet restart");
    const before = await operations();
    await apply(podWithClaim(second));
    await waitForPodsReady([second]);
    assert.equal((await podInterface(second))?.mtu, 1300);
    // One prepare and one attach for the pod that started, as the agent's metrics count them.
    const after = await operations();
    assert.equal(after.prepare - before.prepare, 1, "one prepare");
    assert.equal(after.attach - before.attach, 1, "one attach");
    assert.equal((await agentEndpoint("/livez")).status, 200);
  });

  it("leaves a pod beyond the node's devices Pending, and runs it when a device frees up (5)", async () => {
    await apply(podWithClaim(third));
    await eventually("the third pod to be unschedulable for want of devices", async () => {
      const condition = (await getPod(third)).status.conditions?.find((c) => c.type === "PodScheduled");
      return condition?.status === "False" && /cannot allocate all claims/.test(condition.message ?? "");
    }, 60_000);
    await deletePods([second]);
    await waitForPodsReady([third], "default", 300);
    assert.equal((await podInterface(third))?.mtu, 1300);
  });

  it("does not start a pod without its interface while the agent is down, and starts it with it once back (6)", async () => {
    await deletePods([third]);
    await agent.stop();
    await apply(podWithClaim(fourth));
    await eventually("the kubelet to try and fail to prepare the claim", async () => {
      const { stdout } = await runCommand((await node()).kubectl, ["--kubeconfig", (await node()).kubeconfig, "get", "events", "--field-selector", `involvedObject.name=${fourth}`, "-o", "jsonpath={.items[*].reason}"]);
      return /FailedPrepareDynamicResources/.test(stdout);
    }, 60_000);
    assert.notEqual((await getPod(fourth)).status.phase, "Running");
    await agent.start();
    await waitForPodsReady([fourth], "default", 300);
    assert.equal((await podInterface(fourth))?.mtu, 1300, "the pod started with its interface");
  });
});
