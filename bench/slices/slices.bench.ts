/**
 * Slice publication against the real control plane (make bench-slices):
 *   - start to published pool for a 1000-device node (8 slices), and as a
 *     ratio to a baseline measured in the same run: an admin client creating
 *     the same 8 slice objects directly, without discovery or reconcile;
 *   - API requests in a steady-state window (expected: none; the watch
 *     reconnects once per timeout, 1800 s by default);
 *   - repair time after a slice is deleted, and after one is edited;
 *   - hotplug time: a new veth on the host to its device in the slice;
 *   - agent memory: RSS and heap of a fresh process running only the
 *     inventory and publisher for the same 1000 devices (agent-memory.ts).
 * Ends with one JSON line.
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { linkEventSource } from "../../src/netlink/index.ts";
import type { ResourceSlice } from "../../src/kube/index.ts";
import { largeSriovNode } from "../../test/fixtures/nodes.ts";
import { agentClient, agentToken, cluster, createFakeNode, fixtureRoot, nodeSlices, startAgent, waitFor } from "../../test/api/harness.ts";

const DEVICES = 1000;
const STEADY_WINDOW_MS = 30_000;

const c = await cluster();
const nodeName = "bench-slices";
await createFakeNode(c, nodeName);
await using tree = await fixtureRoot(largeSriovNode(DEVICES));
const client = await agentClient(c, nodeName);

const started = performance.now();
const agent = await startAgent({ client, nodeName, root: tree.root });
const published = await nodeSlices(c, nodeName);
const startToPublishedMs = performance.now() - started;
const deviceCount = published.reduce((n, s) => n + (s.spec.devices?.length ?? 0), 0);
if (deviceCount !== DEVICES) throw new Error(`expected ${DEVICES} devices published, got ${deviceCount}`);
const startupWrites = client.counter.writes();

// Baseline: the same slice objects created directly under another node name.
const baselineNode = "bench-slices-baseline";
const baselineOwner = await createFakeNode(c, baselineNode);
const baselineStarted = performance.now();
for (const slice of published) {
  const copy: ResourceSlice = {
    apiVersion: "resource.k8s.io/v1",
    kind: "ResourceSlice",
    metadata: {
      name: (slice.metadata.name ?? "").replace(nodeName, baselineNode),
      ownerReferences: [{ apiVersion: "v1", kind: "Node", name: baselineNode, uid: baselineOwner.metadata.uid ?? "", controller: true }],
    },
    spec: { ...slice.spec, nodeName: baselineNode, pool: { ...slice.spec.pool, name: baselineNode } },
  };
  await c.admin.request("POST", "/apis/resource.k8s.io/v1/resourceslices", { body: copy });
}
const baselineMs = performance.now() - baselineStarted;

// Steady state: nothing changes, so nothing should be sent.
const before = client.counter.total();
const writesBefore = client.counter.writes();
await sleep(STEADY_WINDOW_MS);
const steadyRequests = client.counter.total() - before;
const steadyWrites = client.counter.writes() - writesBefore;

// Repair after delete and after edit.
const victim = published[1]!;
const victimPath = `/apis/resource.k8s.io/v1/resourceslices/${victim.metadata.name ?? ""}`;
const deleteStarted = performance.now();
await c.admin.request("DELETE", victimPath);
await waitFor("repair after delete", async () => {
  const slice = await c.admin.request<ResourceSlice>("GET", victimPath).catch(() => undefined);
  return slice !== undefined && slice.metadata.uid !== victim.metadata.uid ? true : undefined;
});
const repairDeleteMs = performance.now() - deleteStarted;

const current = await c.admin.request<ResourceSlice>("GET", victimPath);
const edited = structuredClone(current);
edited.spec.devices = edited.spec.devices?.slice(1) ?? [];
const editStarted = performance.now();
const afterEdit = await c.admin.request<ResourceSlice>("PUT", victimPath, { body: edited });
await waitFor("repair after edit", async () => {
  const slice = await c.admin.request<ResourceSlice>("GET", victimPath);
  return slice.metadata.resourceVersion !== afterEdit.metadata.resourceVersion && slice.spec.devices?.length === current.spec.devices?.length ? true : undefined;
});
const repairEditMs = performance.now() - editStarted;

await agent.stop();

// Memory of the agent's slice machinery alone, in its own process, same node and token source.
const memoryNode = "bench-memory";
await createFakeNode(c, memoryNode);
const memoryToken = await agentToken(c, memoryNode);
const child = await promisify(execFile)(process.execPath, ["--expose-gc", new URL("agent-memory.ts", import.meta.url).pathname], {
  env: { ...process.env, BENCH_ROOT: tree.root, BENCH_NODE: memoryNode, BENCH_TOKEN: memoryToken, BENCH_KUBECONFIG: c.kubeconfig },
});
const memory = JSON.parse(child.stdout.trim().split("\n").at(-1) ?? "{}") as { devices: number; rss: number; heapUsed: number };
if (memory.devices !== DEVICES) throw new Error(`agent-memory published ${memory.devices} devices, expected ${DEVICES}`);

// Hotplug on the real host: a veth pair, seen through netlink link events.
const hotplugNode = "bench-hotplug";
await createFakeNode(c, hotplugNode);
const hotplugClient = await agentClient(c, hotplugNode);
spawnSync("ip", ["link", "del", "benchhp0a"], { stdio: "ignore" });
const hotplugAgent = await startAgent({
  client: hotplugClient,
  nodeName: hotplugNode,
  root: "/",
  policy: { include: [{ ifName: "benchhp0*", kinds: ["veth"] }] },
  linkEvents: linkEventSource(),
});
const hotplugStarted = performance.now();
execFileSync("ip", ["link", "add", "benchhp0a", "type", "veth", "peer", "name", "benchhp0b"]);
await waitFor("hotplugged veth in the slice", async () => {
  const slices = await nodeSlices(c, hotplugNode);
  return slices.some((s) => s.spec.devices?.some((d) => d.name === "benchhp0a")) ? true : undefined;
});
const hotplugMs = performance.now() - hotplugStarted;
spawnSync("ip", ["link", "del", "benchhp0a"], { stdio: "ignore" });
await hotplugAgent.stop();
for (const k of [client, hotplugClient, c.admin]) k.close();

const round = (n: number): number => Math.round(n * 10) / 10;
const figures = {
  benchmark: "slices",
  devices: DEVICES,
  slices: published.length,
  startToPublishedMs: round(startToPublishedMs),
  baselineDirectCreateMs: round(baselineMs),
  startToPublishedVsBaseline: round(startToPublishedMs / baselineMs),
  startupWrites,
  steadyWindowSeconds: STEADY_WINDOW_MS / 1000,
  steadyRequests,
  steadyWrites,
  steadyRequestsPerHour: round((steadyRequests * 3_600_000) / STEADY_WINDOW_MS + 3600 / 1800),
  repairAfterDeleteMs: round(repairDeleteMs),
  repairAfterEditMs: round(repairEditMs),
  hotplugVethMs: round(hotplugMs),
  agentRssMiB: round(memory.rss / 2 ** 20),
  agentHeapUsedMiB: round(memory.heapUsed / 2 ** 20),
};
console.log(`1000 devices: ${figures.slices} slices published in ${figures.startToPublishedMs} ms (${figures.startToPublishedVsBaseline}x a direct create of the same slices)`);
console.log(`steady state: ${steadyRequests} requests, ${steadyWrites} writes in ${figures.steadyWindowSeconds} s; ~${figures.steadyRequestsPerHour} requests/hour including watch reconnects`);
console.log(`repair: delete ${figures.repairAfterDeleteMs} ms, edit ${figures.repairAfterEditMs} ms; hotplug veth ${figures.hotplugVethMs} ms; agent rss ${figures.agentRssMiB} MiB, heap ${figures.agentHeapUsedMiB} MiB`);
console.log(JSON.stringify(figures));
