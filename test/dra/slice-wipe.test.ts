/**
 * The kubelet deletes a DRA driver's ResourceSlices once no plugin of the
 * driver has been usable for 30 s (its DRA plugin manager, here the
 * kubelet's own code in the peer, given an API client and a shorter delay),
 * and all of a node's slices when it starts. The agent must survive both: a
 * restart within the delay loses nothing, and after a longer absence it
 * publishes its slices again when it comes back.
 */
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { ResourceSlice } from "../../src/kube/index.ts";
import { cluster, createFakeNode, deleteIfExists, fixtureRoot, nodeSlices, waitFor, type Cluster } from "../api/harness.ts";
import { virtioNode } from "../fixtures/nodes.ts";
import { AgentProcess } from "./agent-process.ts";
import { DRIVER, writeClaims } from "./fixtures.ts";
import { removeDirs, testDirs, type TestDirs } from "./harness.ts";
import { KubeletPeer } from "./kubelet-peer.ts";

const NODE = "dra-wipe";
const WIPING_DELAY_MS = 4_000;
const OTHER_DRIVER = "other.example.com";
const SLICES_PATH = "/apis/resource.k8s.io/v1/resourceslices";

describe("the kubelet's ResourceSlice wiping", { timeout: 180_000 }, () => {
  let c: Cluster;
  let dirs: TestDirs;
  let tree: { root: string; [Symbol.asyncDispose](): Promise<void> };
  let peer: KubeletPeer;
  let agent: AgentProcess | undefined;
  let nodeUid = "";
  /** The devices the agent published first. */
  let devices: string[] = [];

  const startAgent = async (): Promise<AgentProcess> => {
    agent = await AgentProcess.start({ ...dirs, publish: { kubeconfig: c.kubeconfig, nodeName: NODE, sysfsRoot: tree.root } });
    return agent;
  };
  const ours = async (): Promise<ResourceSlice[]> => (await nodeSlices(c, NODE)).filter((s) => s.spec.driver === DRIVER);
  const published = (what: string) => waitFor(what, async () => {
    const slices = await ours();
    return slices.length > 0 && slices.every((s) => (s.spec.devices ?? []).length > 0) ? slices : undefined;
  }, 30_000);
  // Owned by the Node, as drivers' slices are, so the garbage collector removes what a failed run leaves.
  const otherSlice = (name: string) =>
    c.admin.request("POST", SLICES_PATH, {
      body: {
        apiVersion: "resource.k8s.io/v1",
        kind: "ResourceSlice",
        metadata: { name, ownerReferences: [{ apiVersion: "v1", kind: "Node", name: NODE, uid: nodeUid, controller: true }] },
        spec: { driver: OTHER_DRIVER, nodeName: NODE, pool: { name: NODE, generation: 0, resourceSliceCount: 1 }, devices: [] },
      },
    });

  before(async () => {
    c = await cluster();
    nodeUid = (await createFakeNode(c, NODE)).metadata.uid ?? "";
    dirs = testDirs();
    await mkdir(dirs.registryDir, { recursive: true });
    await writeClaims(dirs.claimsFile, []);
    tree = await fixtureRoot(virtioNode());
  });
  after(async () => {
    await agent?.stop();
    await peer.stop();
    await tree[Symbol.asyncDispose]();
    removeDirs(dirs);
    for (const name of [`${NODE}-before-kubelet`, `${NODE}-other`]) await deleteIfExists(c, `${SLICES_PATH}/${name}`);
    await deleteIfExists(c, `/api/v1/nodes/${NODE}`);
  });

  it("starts by wiping every slice of the node, as the kubelet does", async () => {
    await otherSlice(`${NODE}-before-kubelet`);
    peer = await KubeletPeer.start(dirs.registryDir, { health: false, api: { kubeconfig: c.kubeconfig, nodeName: NODE, wipingDelayMs: WIPING_DELAY_MS } });
    await waitFor("the kubelet's start-up wipe", async () => ((await nodeSlices(c, NODE)).length === 0 ? true : undefined));
  });

  it("keeps the agent's slices while it runs, and when it is back within the delay after kill -9", async () => {
    const first = await startAgent();
    await peer.nextEvent("registered", (e) => e.endpoint === first.paths.dra);
    const slices = await published("the agent's slices");
    devices = deviceNames(slices);
    assert.ok(devices.length > 0);
    const before = slices.map((s) => s.metadata.uid).sort();
    await sleep(WIPING_DELAY_MS + 1_000);
    assert.deepEqual((await ours()).map((s) => s.metadata.uid).sort(), before, "registered and connected: nothing is wiped");

    await first.kill();
    await startAgent();
    await sleep(WIPING_DELAY_MS + 2_000);
    assert.deepEqual((await ours()).map((s) => s.metadata.uid).sort(), before, "the same slices, never deleted and re-created");
  });

  it("wipes the driver's slices, and only those, once the agent has been gone longer than the delay", async () => {
    await otherSlice(`${NODE}-other`);
    const deregistered = peer.events("deregistered").length;
    await agent?.stop();
    await peer.nextEvent("deregistered", undefined, deregistered + 1);
    await sleep(WIPING_DELAY_MS / 2);
    assert.ok((await ours()).length > 0, "the slices stay while the kubelet waits for the driver to come back");
    await waitFor("the kubelet to wipe the driver's slices", async () => ((await ours()).length === 0 ? true : undefined), WIPING_DELAY_MS + 20_000);
    assert.deepEqual((await nodeSlices(c, NODE)).map((s) => s.spec.driver), [OTHER_DRIVER], "another driver's slice stays");
  });

  it("publishes the slices again when the agent comes back", async () => {
    const registered = peer.events("registered").length;
    const back = await startAgent();
    await peer.nextEvent("registered", (e) => e.endpoint === back.paths.dra, registered + 1);
    assert.deepEqual(deviceNames(await published("the agent's slices again")), devices);
  });
});

function deviceNames(slices: readonly ResourceSlice[]): string[] {
  return slices.flatMap((s) => (s.spec.devices ?? []).map((d) => d.name)).sort();
}
