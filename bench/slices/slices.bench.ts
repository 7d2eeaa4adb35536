/**
 * Slice publication against the real control plane (make bench-slices):
 *   - start to published pool for a 1000-device node (8 slices), and as a
 *     ratio to a baseline measured in the same run: an admin client creating
 *     the same 8 slice objects directly, without discovery or reconcile;
 *   - API requests and writes in a steady-state window, as measured (expected:
 *     none; the watch's reconnect, once per 1800 s by default, falls outside
 *     a 30 s window and is not counted, nor added);
 *   - repair time after a slice is deleted, and after one is edited;
 *   - hotplug time: a new veth on the host to its device in the slice;
 *   - memory: the RSS of the whole agent (`netclaim agent`, with its engine
 *     and link-event threads, NRI, DRA and status reporting) once it has
 *     published the same 1000 devices, read from /proc; and, for what the
 *     slices cost alone, RSS and heap of a fresh process running only the
 *     inventory and publisher (agent-memory.ts).
 * Ends with one JSON line.
 */
import { execFile, execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { linkEventSource } from "../../src/netlink/index.ts";
import { kubeconfigCredentials, type ResourceSlice } from "../../src/kube/index.ts";
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
const agentRssBytes = await wholeAgentRss();

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
  repairAfterDeleteMs: round(repairDeleteMs),
  repairAfterEditMs: round(repairEditMs),
  hotplugVethMs: round(hotplugMs),
  agentRssMiB: round(agentRssBytes / 2 ** 20),
  slicePublisherRssMiB: round(memory.rss / 2 ** 20),
  slicePublisherHeapUsedMiB: round(memory.heapUsed / 2 ** 20),
};
console.log(`1000 devices: ${figures.slices} slices published in ${figures.startToPublishedMs} ms (${figures.startToPublishedVsBaseline}x a direct create of the same slices)`);
console.log(`steady state: ${steadyRequests} requests, ${steadyWrites} writes in ${figures.steadyWindowSeconds} s (measured; the watch's reconnect every 1800 s is outside the window)`);
console.log(`repair: delete ${figures.repairAfterDeleteMs} ms, edit ${figures.repairAfterEditMs} ms; hotplug veth ${figures.hotplugVethMs} ms`);
console.log(`memory: whole agent rss ${figures.agentRssMiB} MiB; inventory and publisher alone rss ${figures.slicePublisherRssMiB} MiB, heap ${figures.slicePublisherHeapUsedMiB} MiB`);
console.log(JSON.stringify(figures));

/**
 * Runs `netclaim agent` as the DaemonSet does (its own credentials, every
 * part started; no runtime or kubelet answers, which costs it nothing) on
 * the 1000-device tree, and returns its RSS a few seconds after its pool is
 * published.
 */
async function wholeAgentRss(): Promise<number> {
  const node = "bench-agent";
  await createFakeNode(c, node);
  const dir = await mkdtemp("/tmp/nc-bench-agent-");
  const runtimeDir = await mkdtemp("/dev/shm/nc-bench-agent-");
  // The cluster's server and CA, with the agent's token in place of the admin's certificate.
  const cluster = kubeconfigCredentials(c.kubeconfig);
  await writeFile(
    join(dir, "kubeconfig"),
    JSON.stringify({
      "current-context": "agent",
      clusters: [{ name: "cluster", cluster: { server: cluster.server.href, "certificate-authority-data": cluster.tls.ca?.toString("base64") } }],
      users: [{ name: "netclaim-agent", user: { token: await agentToken(c, node) } }],
      contexts: [{ name: "agent", context: { cluster: "cluster", user: "netclaim-agent" } }],
    }),
  );
  await writeFile(
    join(dir, "agent.yaml"),
    JSON.stringify({
      apiVersion: "netclaim.dev/v1alpha1",
      kind: "AgentConfig",
      nodeName: node,
      kubeconfig: join(dir, "kubeconfig"),
      stateDir: join(dir, "state"),
      runtimeDir,
      inventory: { root: tree.root },
      kubelet: { rootDir: join(dir, "kubelet") },
      nri: { socketPath: join(dir, "nri.sock") },
      cdi: { specDir: join(dir, "cdi") },
      log: { level: "warn" },
    }),
  );
  const main = new URL("../../src/cli/main.ts", import.meta.url).pathname;
  const agent = spawn(process.execPath, [main, "agent", "--config", join(dir, "agent.yaml")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  agent.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    await waitFor("the whole agent to publish its pool", async () => {
      if (agent.exitCode !== null) throw new Error(`netclaim agent exited with ${agent.exitCode}: ${stderr.slice(-2000)}`);
      const devices = (await nodeSlices(c, node)).reduce((n, s) => n + (s.spec.devices?.length ?? 0), 0);
      return devices === DEVICES ? true : undefined;
    }, 120_000);
    await sleep(3_000);
    const status = await readFile(`/proc/${agent.pid ?? 0}/status`, "utf8");
    const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
    if (kib === undefined) throw new Error(`no VmRSS in /proc/${agent.pid ?? 0}/status`);
    return Number(kib) * 1024;
  } finally {
    agent.kill("SIGTERM");
    if (agent.exitCode === null) await once(agent, "exit");
    await rm(dir, { recursive: true, force: true });
    await rm(runtimeDir, { recursive: true, force: true });
  }
}
