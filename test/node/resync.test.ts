// Re-synchronization on the node simulator: what happens while the agent or
// the runtime connection is away, and how the agent catches up.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { waitFor } from "../api/harness.ts";
import type { ResourceClaim } from "../../src/kube/index.ts";
import { DRIVER, links, SimNode } from "./harness.ts";
import { claimTemplate, deviceClass, pod, preparedPod, scheduledClaim } from "./objects.ts";

const NODE = "nc-sim-2";
const NS = "default";

describe("node simulator: re-synchronization", { timeout: 300_000 }, () => {
  let node: SimNode;

  before(async () => {
    node = await SimNode.create(NODE, { nicPrefix: "ncsb" });
    await node.addNic("ncsb0");
    await node.addNic("ncsm1");
    await node.startAgent();
    await node.apply(deviceClass());
    await node.apply(claimTemplate(NS, "sim-one", { interface: { name: "data0", addresses: ["198.51.100.20/24"] } }, ["data"]));
  });

  after(async () => {
    await node.cleanup();
  });

  /** Where this suite's pods live and how they get a device (see preparedPod). */
  const podIn = { namespace: NS, nodeName: NODE, template: "sim-one", master: "ncsm1" };

  async function claimStatus(name: string): Promise<NonNullable<ResourceClaim["status"]>["devices"]> {
    const c = await node.c.admin.request<ResourceClaim>("GET", `/apis/resource.k8s.io/v1/namespaces/${NS}/resourceclaims/${name}`);
    return c.status?.devices ?? [];
  }

  it("refuses to prepare while the runtime connection is down, and prepares once it is back", async () => {
    await node.deletePod(NS, "sim-pod-down");
    await node.apply(pod(NS, NODE, "sim-pod-down", "sim-one"));
    const { claim } = await scheduledClaim(node, NS, NODE, "sim-pod-down");
    const ref = { namespace: NS, name: claim.metadata.name, uid: claim.metadata.uid };
    await node.runtime.stop();
    await waitFor("the agent to see the runtime gone", () => Promise.resolve(node.agentLog.includes('"state":"disconnected"') ? true : undefined));
    const refused = await node.kubelet.prepare(DRIVER, [ref]);
    assert.match(refused.response.claims?.[claim.metadata.uid]?.error ?? "", /not connected to the container runtime's NRI socket/);

    await node.restartRuntime();
    const prepared = await waitFor("prepare to succeed after the runtime is back", async () => {
      const result = await node.kubelet.prepare(DRIVER, [ref]);
      return (result.response.claims?.[claim.metadata.uid]?.error ?? "") === "" ? result : undefined;
    }, 30_000);
    assert.equal(prepared.response.claims?.[claim.metadata.uid]?.devices?.length, 1);
    await node.kubelet.unprepare(DRIVER, [ref]);
    await node.deletePod(NS, "sim-pod-down");
  });

  it("attaches late, and says so, when the sandbox started while the agent was down", async () => {
    const { claimName, ref, netns, sandbox } = await preparedPod(node, { ...podIn, podName: "sim-pod-late", net1Address: "198.51.100.201/24" });
    await node.stopAgent();
    await node.startPod(sandbox); // nobody attaches: the agent is down
    await node.runtime.command("addRunningPod", { pod: sandbox });
    assert.equal((await links(netns)).some((l) => l.ifname === "data0"), false);

    await node.startAgent();
    await waitFor("data0 attached late", async () => ((await links(netns)).some((l) => l.ifname === "data0") ? true : undefined), 30_000);
    const devices = await waitFor("a Ready condition saying the attach was late", async () => {
      const d = await claimStatus(claimName);
      return d?.some((e) => e.conditions?.some((k) => k.reason === "InterfaceAttachedLate")) === true ? d : undefined;
    });
    assert.equal(devices[0]?.networkData?.interfaceName, "data0");

    await node.runtime.command("stopPod", { pod: sandbox });
    assert.ok((await links()).some((l) => l.ifname === "ncsb0"), "the device is back on the host");
    await node.kubelet.unprepare(DRIVER, [ref]);
    await node.deletePod(NS, sandbox.name);
  });

  it("a stopping agent finishes the attach RunPodSandbox left running before it exits", async () => {
    const { ref, netns, sandbox } = await preparedPod(node, { ...podIn, podName: "sim-pod-stop", net1Address: "198.51.100.203/24" });
    await node.runtime.command("runPod", { pod: sandbox }); // the move and configuration are still to come
    await node.stopAgent(); // SIGTERM at once
    const data0 = (await links(netns)).find((l) => l.ifname === "data0");
    assert.deepEqual((data0?.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${String(a.prefixlen)}`), ["198.51.100.20/24"]);

    await node.startAgent();
    await node.runtime.command("stopPod", { pod: sandbox });
    assert.ok((await links()).some((l) => l.ifname === "ncsb0"), "the device is back on the host");
    await node.kubelet.unprepare(DRIVER, [ref]);
    await node.deletePod(NS, sandbox.name);
  });

  it("restores the devices of a pod the runtime removed while the agent was down", async () => {
    const { ref, netns, sandbox } = await preparedPod(node, { ...podIn, podName: "sim-pod-gone", net1Address: "198.51.100.202/24" });
    await node.restartRuntime(); // a fresh runtime whose state does not include earlier test pods
    await node.startPod(sandbox);
    assert.ok((await links(netns)).some((l) => l.ifname === "data0"));

    await node.stopAgent();
    await node.runtime.command("stopPod", { pod: sandbox }); // the runtime tears the pod down without us
    await node.startAgent(); // its Synchronize does not list the pod
    await waitFor("ncsb0 back on the host", async () => ((await links()).some((l) => l.ifname === "ncsb0") ? true : undefined), 30_000);
    assert.equal((await links(netns)).some((l) => l.ifname === "data0"), false);
    await node.kubelet.unprepare(DRIVER, [ref]);
    await node.deletePod(NS, "sim-pod-gone");
  });
});

