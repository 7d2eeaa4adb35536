/**
 * netclaim at cluster scale against the real control plane (make
 * bench-scale): SCALE_NODES simulated nodes (default 1000), each with
 * netclaim's own SlicePublisher publishing its pool under its own identity
 * (fleet.ts): 64 devices per node (SCALE_PFS PFs with SCALE_VFS_PER_PF VFs,
 * default 4 × 15) and every SCALE_LARGE_EVERY-th node (default 100) 192, so
 * its pool splits into two slices; a second, fake driver publishes 8
 * GPU-like devices per node, on the same PCIe roots.
 *
 * The control plane is an instance of its own (hack/cluster/cluster.sh with
 * its own state directory and ports, the newest release of the matrix), so
 * that the test suites sharing this machine neither show up in its request
 * counters, etcd size and memory nor see its 1000 nodes; it is started fresh
 * and removed at the end.
 *
 * Per workload shape, SCALE_PODS pods (default 500), each created with a
 * scheduling gate, so that every claim exists before the clock starts, then
 * ungated as fast as four clients can: scheduler throughput is pods bound
 * per second from the first ungate to the last bind, and scheduling latency
 * is ungate sent to bind seen by a watch. The pods are then run by a kubelet
 * stand-in with the agent's per-claim requests (kubelet.ts) and deleted;
 * the API server's request counters over the whole lifecycle, divided by the
 * pods, give the requests per pod (node Lease renewals left out: they do not
 * depend on pods). Shapes: no claim (the baseline), 1 NIC, 2 NICs on one
 * PCIe root (matchAttribute), and a GPU with a NIC on its PCIe root. The
 * baseline and 1 NIC run again on a second scheduler whose client rate limit
 * is SCALE_TUNED_QPS (default 1000; the shipped default is 50): the default
 * one is held by its rate limit, this one shows the scheduler's own pace.
 *
 * Between publication and the workloads, SCALE_STEADY_SECONDS (default 120)
 * of nothing: every publisher's requests in that window, per agent-hour;
 * and over the whole run, which the pods do not concern.
 *
 * Ends with one JSON line.
 */
import { fork, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { openSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { KubeClient, ResourceSlice } from "../../src/kube/index.ts";
import { cluster, fixtureRoot, waitFor } from "../../test/api/harness.ts";
import { envCount, envNumber } from "../env.ts";
import { kubeClientFrom } from "../kube-client.ts";
import type { FleetNode, FromFleet, ToFleet } from "./fleet.ts";
import { apiserverHeapInUse, apiserverRequests, componentUsage, etcdSize, processUsage, requestDelta, type ProcessUsage } from "./metrics.ts";
import { SHAPES, sriovServer } from "./shapes.ts";
import { forEachLimit, microTime, percentile } from "./util.ts";

const NODES = envCount("SCALE_NODES", 1000);
const PODS = envCount("SCALE_PODS", 500);
// The second scheduler's client rate limit (the shipped default is 50 QPS, burst 100).
const TUNED_QPS = envCount("SCALE_TUNED_QPS", 1000);
const LARGE_EVERY = envCount("SCALE_LARGE_EVERY", 100);
const STEADY_SECONDS = envCount("SCALE_STEADY_SECONDS", 120);
// The node lifecycle controller's grace period is 50 s; a kubelet renews every 10 s.
const LEASE_RENEW_SECONDS = envCount("SCALE_LEASE_RENEW_SECONDS", 20);
const CONCURRENCY = 16;
// Pod writes go over several connections: one client's 8 sockets held plain pods' ungating below the scheduler's pace.
const POD_CLIENTS = 4;
const standardShape = { pfs: envCount("SCALE_PFS", SHAPES.standard.pfs), vfsPerPf: envNumber("SCALE_VFS_PER_PF", SHAPES.standard.vfsPerPf, { integer: true, min: 0 }) };
const GPUS_PER_NODE = 8;
const GPU_DRIVER = "gpu.bench.netclaim.dev";
const POD_LABEL = "netclaim.dev/scale-bench";
const GATE = "netclaim.dev/scale-bench";

// An instance of our own, unless the caller names one; never the suites' shared ones.
const repo = new URL("../../", import.meta.url).pathname;
const newest = /^K8S_NEWEST=(\S+)$/m.exec(readFileSync(`${repo}hack/cluster/versions.env`, "utf8"))?.[1] ?? "";
process.env.K8S_VERSION ??= newest;
process.env.NETCLAIM_CLUSTER_DIR ??= "/tmp/nc-scale";
process.env.NETCLAIM_CLUSTER_API_PORT ??= "16460";
process.env.NETCLAIM_CLUSTER_ETCD_PORT ??= "12460";
const clusterDir = process.env.NETCLAIM_CLUSTER_DIR;
const etcdPort = Number(process.env.NETCLAIM_CLUSTER_ETCD_PORT);
if (/^\/tmp\/nc-cluster(-v[\d.]+)?\/?$/.test(clusterDir)) throw new Error(`bench-scale removes its control plane at the end: give it a directory of its own, not the suites' ${clusterDir}`);
const clusterScript = `${repo}hack/cluster/cluster.sh`;
const clusterSh = (verb: "up" | "down"): void => {
  const result = spawnSync(clusterScript, [verb], { stdio: ["ignore", "inherit", "inherit"] });
  if (result.status !== 0) throw new Error(`cluster.sh ${verb} failed`);
};

const log = (line: string): void => {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
};
const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

clusterSh("down");
const c = await cluster();
const podClients = Array.from({ length: POD_CLIENTS }, () => kubeClientFrom(c.kubeconfig));
const podClient = (i: number): KubeClient => podClients[i % POD_CLIENTS]!;
log(`control plane ${c.version} up (${clusterDir})`);

// A second scheduler, the same binary with its client rate limit raised, for pods that name it:
// what the scheduler itself can do, beside what a default installation does.
const TUNED = "scale-tuned";
const schedulerConfig = `${clusterDir}/scale-tuned-scheduler.yaml`;
writeFileSync(
  schedulerConfig,
  JSON.stringify({
    apiVersion: "kubescheduler.config.k8s.io/v1",
    kind: "KubeSchedulerConfiguration",
    clientConnection: { kubeconfig: `${clusterDir}/scheduler.kubeconfig`, qps: TUNED_QPS, burst: TUNED_QPS * 2 },
    leaderElection: { leaderElect: false },
    profiles: [{ schedulerName: TUNED }],
  }),
);
const tunedLog = openSync(`${clusterDir}/scale-tuned-scheduler.log`, "a");
const tunedScheduler = spawn(
  `${dirname(c.kubectl)}/kube-scheduler`,
  ["--config", schedulerConfig, ...["authentication", "authorization"].map((a) => `--${a}-kubeconfig=${clusterDir}/scheduler.kubeconfig`), "--bind-address=127.0.0.1", "--secure-port=0", "--v=1"],
  { stdio: ["ignore", tunedLog, tunedLog] },
);

const names = Array.from({ length: NODES }, (_, i) => `scale-n${String(i).padStart(4, "0")}`);
const isLarge = (i: number): boolean => i % LARGE_EVERY === LARGE_EVERY - 1;
const expectedDevices = names.reduce((n, _, i) => n + (isLarge(i) ? SHAPES.large.devices : standardShape.pfs * (1 + standardShape.vfsPerPf)), 0);

await using standardTree = await fixtureRoot(sriovServer(standardShape.pfs, standardShape.vfsPerPf));
await using largeTree = await fixtureRoot(sriovServer(SHAPES.large.pfs, SHAPES.large.vfsPerPf));

const fleet = fork(new URL("fleet.ts", import.meta.url).pathname, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
const fleetMessages: FromFleet[] = [];
const fleetWaiters: (() => void)[] = [];
fleet.on("message", (message: FromFleet) => {
  fleetMessages.push(message);
  for (const wake of fleetWaiters.splice(0)) wake();
});
async function ask<K extends FromFleet["type"]>(message: ToFleet, reply: K): Promise<Extract<FromFleet, { type: K }>> {
  fleet.send(message);
  for (;;) {
    const index = fleetMessages.findIndex((m) => m.type === reply);
    if (index >= 0) return fleetMessages.splice(index, 1)[0] as Extract<FromFleet, { type: K }>;
    if (fleet.exitCode !== null) throw new Error(`the fleet exited with ${fleet.exitCode}`);
    await new Promise<void>((resolve) => fleetWaiters.push(resolve));
  }
}

const usage = async (): Promise<Record<"apiserver" | "etcd" | "scheduler" | "controllerManager", ProcessUsage>> => ({
  apiserver: await componentUsage(clusterDir, "kube-apiserver"),
  etcd: await componentUsage(clusterDir, "etcd"),
  scheduler: await componentUsage(clusterDir, "kube-scheduler"),
  controllerManager: await componentUsage(clusterDir, "kube-controller-manager"),
});
// Peak RSS of the API server over the run, sampled from /proc.
let apiserverPeakRss = 0;
const rssSampler = setInterval(() => {
  componentUsage(clusterDir, "kube-apiserver").then(
    (u) => (apiserverPeakRss = Math.max(apiserverPeakRss, u.rssBytes)),
    () => undefined,
  );
}, 2000);

const figures: Record<string, unknown> = { benchmark: "scale", kubernetes: c.version };
try {
  const atStart = { etcd: await etcdSize(etcdPort), usage: await usage(), heap: await apiserverHeapInUse(c.kubectl, c.kubeconfig) };

  // Nodes (status set on create, which the Node API allows) and their Leases.
  const started = performance.now();
  const nodeUids = new Map<string, string>();
  await forEachLimit(names, CONCURRENCY, async (name) => {
    const now = new Date();
    const node = await c.admin.request<{ metadata: { uid: string } }>("POST", "/api/v1/nodes", {
      body: {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name, labels: { "kubernetes.io/hostname": name, [POD_LABEL]: "node" } },
        status: {
          capacity: { cpu: "64", memory: "256Gi", pods: "110" },
          allocatable: { cpu: "64", memory: "256Gi", pods: "110" },
          conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "simulated", lastHeartbeatTime: now.toISOString(), lastTransitionTime: now.toISOString() }],
        },
      },
    });
    nodeUids.set(name, node.metadata.uid);
    await c.admin.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
      body: {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name, ownerReferences: [{ apiVersion: "v1", kind: "Node", name, uid: node.metadata.uid }] },
        spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: microTime(now) },
      },
    });
  });
  const nodesMs = performance.now() - started;
  const afterNodes = { etcd: await etcdSize(etcdPort) };
  log(`${NODES} nodes and leases in ${round(nodesMs / 1000)} s`);

  const fleetNodes: FleetNode[] = names.map((name, i) => ({ name, root: isLarge(i) ? largeTree.root : standardTree.root }));
  const identified = await ask({ type: "identify", nodes: fleetNodes, leaseRenewSeconds: LEASE_RENEW_SECONDS, podLabel: POD_LABEL }, "identified");
  if (identified.errors.length > 0) throw new Error(`the fleet failed: ${identified.errors.join("; ")}`);
  const afterIdentities = { etcd: await etcdSize(etcdPort), usage: await usage(), heap: await apiserverHeapInUse(c.kubectl, c.kubeconfig) };
  log(`${NODES} agent identities (a pod on each node, a bound token) in ${round(identified.ms / 1000)} s`);

  const published = await ask({ type: "publish" }, "published");
  if (published.errors.length > 0) throw new Error(`the fleet failed: ${published.errors.join("; ")}`);
  const slices = await listAll<ResourceSlice>("/apis/resource.k8s.io/v1/resourceslices", { fieldSelector: "spec.driver=netclaim.dev" });
  const devices = slices.reduce((n, s) => n + (s.spec.devices?.length ?? 0), 0);
  if (devices !== expectedDevices) throw new Error(`expected ${expectedDevices} devices published, found ${devices} in ${slices.length} slices`);
  const afterSlices = { etcd: await etcdSize(etcdPort), usage: await usage(), heap: await apiserverHeapInUse(c.kubectl, c.kubeconfig) };
  const sliceJsonBytes = slices.reduce((n, s) => n + Buffer.byteLength(JSON.stringify(s)), 0);
  log(`${NODES} publishers: ${devices} devices in ${slices.length} slices in ${round(published.ms / 1000)} s`);

  // The fake GPU driver: 8 devices per node, half on each PCIe root the NICs use.
  const roots = [...new Set(slices.flatMap((s) => (s.spec.devices ?? []).map((d) => attributeString(d.attributes?.["resource.kubernetes.io/pcieRoot"]))))].filter((r) => r !== "").sort();
  if (roots.length < 2) throw new Error(`expected NICs on two PCIe roots, found ${roots.join(", ")}`);
  await c.admin.request("POST", "/apis/resource.k8s.io/v1/deviceclasses", {
    body: { apiVersion: "resource.k8s.io/v1", kind: "DeviceClass", metadata: { name: "scale-gpu" }, spec: { selectors: [{ cel: { expression: `device.driver == "${GPU_DRIVER}"` } }] } },
  });
  await forEachLimit(names, CONCURRENCY, async (name) => {
    await c.admin.request("POST", "/apis/resource.k8s.io/v1/resourceslices", {
      body: {
        apiVersion: "resource.k8s.io/v1",
        kind: "ResourceSlice",
        metadata: { name: `${name}-gpu`, ownerReferences: [{ apiVersion: "v1", kind: "Node", name, uid: nodeUids.get(name) ?? "", controller: true }] },
        spec: {
          driver: GPU_DRIVER,
          nodeName: name,
          pool: { name, generation: 1, resourceSliceCount: 1 },
          devices: Array.from({ length: GPUS_PER_NODE }, (_, g) => ({
            name: `gpu-${g}`,
            attributes: { "resource.kubernetes.io/pcieRoot": { string: roots[g % roots.length] }, [`${GPU_DRIVER}/index`]: { int: g } },
            capacity: { [`${GPU_DRIVER}/memory`]: { value: "80Gi" } },
          })),
        },
      },
    });
  });
  log(`${NODES} GPU slices (${GPUS_PER_NODE} devices each, the second driver)`);

  // Steady state: nothing changes, so no publisher should send anything.
  const steadyBefore = (await ask({ type: "counters" }, "counters")).publishers;
  log(`steady state: ${STEADY_SECONDS} s of nothing`);
  await sleep(STEADY_SECONDS * 1000);
  const steadyAfter = (await ask({ type: "counters" }, "counters")).publishers;
  const steadyRequests = steadyAfter.total - steadyBefore.total;
  const steadyWrites = steadyAfter.writes - steadyBefore.writes;
  const agentHours = (NODES * STEADY_SECONDS) / 3600;

  const shapes = [
    { name: "plain", template: undefined },
    { name: "nic", template: { requests: [{ name: "nic", exactly: { deviceClassName: "netclaim-netdev" } }] } },
    {
      name: "nic2",
      template: {
        requests: [{ name: "nic", exactly: { deviceClassName: "netclaim-netdev", allocationMode: "ExactCount", count: 2 } }],
        constraints: [{ matchAttribute: "resource.kubernetes.io/pcieRoot" }],
      },
    },
    {
      name: "gpu-nic",
      template: {
        requests: [
          { name: "gpu", exactly: { deviceClassName: "scale-gpu" } },
          { name: "nic", exactly: { deviceClassName: "netclaim-netdev" } },
        ],
        constraints: [{ requests: ["gpu", "nic"], matchAttribute: "resource.kubernetes.io/pcieRoot" }],
      },
    },
  ] as const;
  const runs = [
    ...shapes.map((shape) => ({ ...shape, variant: shape.name, scheduler: undefined })),
    ...shapes.filter((shape) => shape.name === "plain" || shape.name === "nic").map((shape) => ({ ...shape, variant: `${shape.name}-tuned`, scheduler: TUNED })),
  ];
  const results = new Map<string, ShapeResult>();
  for (const shape of runs) {
    const result = await runShape(shape.variant, shape.name, shape.template, shape.scheduler);
    results.set(shape.variant, result);
    log(
      `${shape.variant.padEnd(11)} ${round(result.podsPerS)} pods/s (ungated at ${round(result.ungatePerS)}/s), latency p50 ${round(result.p50Ms)} ms p99 ${round(result.p99Ms)} ms, ` +
        `${round(result.requestsPerPod)} API requests/pod, scheduler ${round(result.schedulerCpuMsPerPod, 2)} CPU ms/pod; ` +
        `created (with claims) at ${round(result.createdPerS)}/s, deleted (claims gone) at ${round(result.cleanedUpPerS)}/s`,
    );
    const perPod = [...result.requestsByKind].filter(([, v]) => v / PODS >= 0.01);
    log(`         per pod: ${perPod.map(([k, v]) => `${k} ${round(v / PODS, 2)}`).join(", ")}`);
  }

  const whole = await ask({ type: "counters" }, "counters");
  if (whole.errors.length > 0) log(`fleet errors: ${whole.errors.join("; ")}`);
  const afterAll = { usage: await usage() };

  const plain = results.get("plain")!;
  const nic = results.get("nic")!;
  const shapeFigures = (prefix: string, r: ShapeResult): Record<string, number> => ({
    [`${prefix}_pods_per_s`]: round(r.podsPerS),
    [`${prefix}_vs_plain_throughput`]: round(r.podsPerS / plain.podsPerS, 3),
    [`${prefix}_sched_p50_ms`]: round(r.p50Ms),
    [`${prefix}_sched_p99_ms`]: round(r.p99Ms),
    [`${prefix}_api_requests_per_pod`]: round(r.requestsPerPod, 2),
    [`${prefix}_scheduler_cpu_ms_per_pod`]: round(r.schedulerCpuMsPerPod, 2),
    [`${prefix}_created_per_s`]: round(r.createdPerS),
    [`${prefix}_cleaned_up_per_s`]: round(r.cleanedUpPerS),
  });
  Object.assign(figures, {
    nodes: NODES,
    devices,
    devices_per_node: standardShape.pfs * (1 + standardShape.vfsPerPf),
    large_node_every: LARGE_EVERY,
    slices: slices.length,
    pods_per_shape: PODS,
    dra_pods_per_s: round(nic.podsPerS),
    plain_pods_per_s: round(plain.podsPerS),
    dra_vs_plain_throughput: round(nic.podsPerS / plain.podsPerS, 3),
    sched_p50_ms: round(nic.p50Ms),
    sched_p99_ms: round(nic.p99Ms),
    plain_sched_p99_ms: round(plain.p99Ms),
    api_requests_per_pod: round(nic.requestsPerPod, 2),
    plain_api_requests_per_pod: round(plain.requestsPerPod, 2),
    ...shapeFigures("dra2", results.get("nic2")!),
    ...shapeFigures("gpu_nic", results.get("gpu-nic")!),
    tuned_scheduler_qps: TUNED_QPS,
    tuned_plain_pods_per_s: round(results.get("plain-tuned")!.podsPerS),
    tuned_plain_sched_p99_ms: round(results.get("plain-tuned")!.p99Ms),
    tuned_dra_pods_per_s: round(results.get("nic-tuned")!.podsPerS),
    tuned_dra_sched_p99_ms: round(results.get("nic-tuned")!.p99Ms),
    tuned_dra_vs_plain_throughput: round(results.get("nic-tuned")!.podsPerS / results.get("plain-tuned")!.podsPerS, 3),
    tuned_dra_scheduler_cpu_ms_per_pod: round(results.get("nic-tuned")!.schedulerCpuMsPerPod, 2),
    plain_scheduler_cpu_ms_per_pod: round(plain.schedulerCpuMsPerPod, 2),
    dra_scheduler_cpu_ms_per_pod: round(nic.schedulerCpuMsPerPod, 2),
    plain_created_per_s: round(plain.createdPerS),
    plain_cleaned_up_per_s: round(plain.cleanedUpPerS),
    dra_created_per_s: round(nic.createdPerS),
    dra_cleaned_up_per_s: round(nic.cleanedUpPerS),
    plain_ungate_per_s: round(plain.ungatePerS),
    agent_requests_per_hour_steady: round(steadyRequests / agentHours, 3),
    agent_writes_per_hour_steady: round(steadyWrites / agentHours, 3),
    steady_window_s: STEADY_SECONDS,
    agent_requests_whole_run: whole.publishers.total - steadyAfter.total + steadyRequests,
    agent_writes_whole_run: whole.publishers.writes - steadyAfter.writes + steadyWrites,
    publish_all_s: round(published.ms / 1000),
    publish_startup_requests_per_agent: round(steadyBefore.total / NODES, 2),
    publish_startup_writes_per_agent: round(steadyBefore.writes / NODES, 2),
    etcd_bytes_per_node: Math.round((afterSlices.etcd.inUse - atStart.etcd.inUse) / NODES),
    etcd_node_lease_bytes_per_node: Math.round((afterNodes.etcd.inUse - atStart.etcd.inUse) / NODES),
    etcd_agent_identity_bytes_per_node: Math.round((afterIdentities.etcd.inUse - afterNodes.etcd.inUse) / NODES),
    etcd_slice_bytes_per_node: Math.round((afterSlices.etcd.inUse - afterIdentities.etcd.inUse) / NODES),
    slice_json_bytes_per_device: Math.round(sliceJsonBytes / devices),
    etcd_db_in_use_mib: round(afterSlices.etcd.inUse / 2 ** 20),
    apiserver_rss_mib_start: round(atStart.usage.apiserver.rssBytes / 2 ** 20),
    apiserver_rss_mib_nodes_identities: round(afterIdentities.usage.apiserver.rssBytes / 2 ** 20),
    apiserver_heap_mib_start: round(atStart.heap / 2 ** 20),
    apiserver_heap_mib_nodes_identities: round(afterIdentities.heap / 2 ** 20),
    apiserver_heap_mib_published: round(afterSlices.heap / 2 ** 20),
    apiserver_rss_mib_published: round(afterSlices.usage.apiserver.rssBytes / 2 ** 20),
    apiserver_rss_mib_peak: round(apiserverPeakRss / 2 ** 20),
    apiserver_rss_mib_end: round(afterAll.usage.apiserver.rssBytes / 2 ** 20),
    scheduler_rss_mib_end: round(afterAll.usage.scheduler.rssBytes / 2 ** 20),
    etcd_rss_mib_end: round(afterAll.usage.etcd.rssBytes / 2 ** 20),
    fleet_errors: whole.errors.length,
    lease_renewals: whole.leaseRenewals,
  });
  const steadyLine = `${steadyRequests} requests, ${steadyWrites} writes from ${NODES} publishers in ${STEADY_SECONDS} s`;
  log(`steady state: ${steadyLine} (${figures.agent_requests_per_hour_steady as number} per agent-hour); whole run ${figures.agent_requests_whole_run as number} requests`);
} finally {
  clearInterval(rssSampler);
  tunedScheduler.kill();
  await stopFleet();
  c.admin.close();
  for (const client of podClients) client.close();
  clusterSh("down");
}
console.log(JSON.stringify(figures));

/** Its publishers stop (their slices stay: the control plane goes next); killed if it hangs. */
async function stopFleet(): Promise<void> {
  if (fleet.exitCode !== null) return;
  fleet.send({ type: "stop" } satisfies ToFleet);
  // An unref'd timer: once the fleet has exited it must not hold this process for the rest of the minute.
  const exited = await Promise.race([once(fleet, "exit").then(() => true), sleep(60_000, false, { ref: false })]);
  if (!exited) fleet.kill("SIGKILL");
}

interface ShapeResult {
  podsPerS: number;
  ungatePerS: number;
  p50Ms: number;
  p99Ms: number;
  requestsPerPod: number;
  requestsByKind: Map<string, number>;
  schedulerCpuMsPerPod: number;
  /** Pods created, and their claims made by the controller manager, per second. */
  createdPerS: number;
  /** Pods deleted until they and their claims are gone, per second. */
  cleanedUpPerS: number;
}

/** One workload shape: PODS gated pods, ungated, scheduled, run, deleted; its figures. */
async function runShape(variant: string, shape: string, template: object | undefined, schedulerName: string | undefined): Promise<ShapeResult> {
  const namespace = `scale-${variant}`;
  await c.admin.request("POST", "/api/v1/namespaces", { body: { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } } });
  await waitFor(`the default ServiceAccount of ${namespace}`, () => c.admin.request("GET", `/api/v1/namespaces/${namespace}/serviceaccounts/default`).then(() => true), 60_000);
  if (template !== undefined) {
    await c.admin.request("POST", `/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaimtemplates`, {
      body: { apiVersion: "resource.k8s.io/v1", kind: "ResourceClaimTemplate", metadata: { name: shape }, spec: { spec: { devices: template } } },
    });
  }
  const pods = Array.from({ length: PODS }, (_, i) => `${variant}-${String(i).padStart(5, "0")}`);
  const schedulerUsage = (): Promise<ProcessUsage> =>
    schedulerName === undefined ? componentUsage(clusterDir, "kube-scheduler") : processUsage(tunedScheduler.pid ?? 0);
  const bound = new Map<string, number>();
  const running = new Set<string>();
  const gone = new Set<string>();
  const podWatch = await c.admin.watch(`/api/v1/namespaces/${namespace}/pods`, { labelSelector: POD_LABEL, timeoutSeconds: 3600 });
  const watchingPods = (async () => {
    for await (const raw of podWatch.events()) {
      const event = raw as { type: string; object: { metadata: { name: string }; spec?: { nodeName?: string }; status?: { phase?: string } } };
      const name = event.object.metadata.name;
      if (event.type === "DELETED") gone.add(name);
      else if ((event.object.spec?.nodeName ?? "") !== "" && !bound.has(name)) bound.set(name, performance.now());
      if (event.object.status?.phase === "Running") running.add(name);
    }
  })();
  // Claims followed by a watch too: polling for them would add the bench's own requests to the count.
  const claims = new Set<string>();
  const claimWatch = await c.admin.watch(`/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaims`, { timeoutSeconds: 3600 });
  const watchingClaims = (async () => {
    for await (const raw of claimWatch.events()) {
      const event = raw as { type: string; object: { metadata: { name: string } } };
      if (event.type === "DELETED") claims.delete(event.object.metadata.name);
      else if (event.type === "ADDED") claims.add(event.object.metadata.name);
    }
  })();

  const requestsBefore = await apiserverRequests(c.kubectl, c.kubeconfig);
  const createStarted = performance.now();
  await forEachLimit(pods, POD_CLIENTS * 8, async (name, i) => {
    await podClient(i).request("POST", `/api/v1/namespaces/${namespace}/pods`, {
      body: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, labels: { [POD_LABEL]: variant } },
        spec: {
          schedulingGates: [{ name: GATE }],
          ...(schedulerName !== undefined ? { schedulerName } : {}),
          automountServiceAccountToken: false,
          containers: [
            {
              name: "c",
              image: "registry.invalid/pause:bench",
              resources: { requests: { cpu: "10m", memory: "16Mi" }, ...(template !== undefined ? { claims: [{ name: "net" }] } : {}) },
            },
          ],
          ...(template !== undefined ? { resourceClaims: [{ name: "net", resourceClaimTemplateName: shape }] } : {}),
        },
      },
    });
  });
  if (template !== undefined) {
    await waitFor(`a claim for each of ${shape}'s pods`, () => Promise.resolve(claims.size === PODS ? true : undefined), 600_000);
  }
  const claimsCreatedMs = performance.now() - createStarted;

  const schedulerBefore = await schedulerUsage();
  const ungated = new Map<string, number>();
  await forEachLimit(pods, POD_CLIENTS * 8, async (name, i) => {
    ungated.set(name, performance.now());
    await podClient(i).request("PATCH", `/api/v1/namespaces/${namespace}/pods/${name}`, {
      body: [{ op: "remove", path: "/spec/schedulingGates" }],
      contentType: "application/json-patch+json",
    });
  });
  const ungateDone = performance.now();
  await waitFor(`${shape}'s pods to be bound`, () => Promise.resolve(bound.size === PODS ? true : undefined), Math.max(300_000, PODS * 500));
  const schedulerAfter = await schedulerUsage();
  const firstUngate = Math.min(...ungated.values());
  const lastBind = Math.max(...bound.values());
  const latencies = pods.map((p) => (bound.get(p) ?? Number.NaN) - (ungated.get(p) ?? Number.NaN)).sort((a, b) => a - b);
  await waitFor(`${shape}'s pods to run`, () => Promise.resolve(running.size === PODS ? true : undefined), 300_000);

  const deleteStarted = performance.now();
  await forEachLimit(pods, POD_CLIENTS * 8, async (name, i) => {
    await podClient(i).request("DELETE", `/api/v1/namespaces/${namespace}/pods/${name}`);
  });
  await waitFor(`${shape}'s pods to be gone`, () => Promise.resolve(gone.size === PODS ? true : undefined), 300_000);
  if (template !== undefined) {
    await waitFor(`${shape}'s claims to be gone`, () => Promise.resolve(claims.size === 0 ? true : undefined), 600_000);
  }
  const cleanedUpMs = performance.now() - deleteStarted;
  const requestsAfter = await apiserverRequests(c.kubectl, c.kubeconfig);
  podWatch.close();
  claimWatch.close();
  await Promise.all([watchingPods, watchingClaims]);

  // Lease renewals go on whatever the pods do; the bench's own metric scrapes are not resources.
  const byKind = requestDelta(requestsBefore, requestsAfter, (key) => key.endsWith(" leases"));
  const total = [...byKind.values()].reduce((a, b) => a + b, 0);
  return {
    podsPerS: (PODS * 1000) / (lastBind - firstUngate),
    ungatePerS: (PODS * 1000) / (ungateDone - firstUngate),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    requestsPerPod: total / PODS,
    requestsByKind: byKind,
    schedulerCpuMsPerPod: (schedulerAfter.cpuMs - schedulerBefore.cpuMs) / PODS,
    createdPerS: (PODS * 1000) / claimsCreatedMs,
    cleanedUpPerS: (PODS * 1000) / cleanedUpMs,
  };
}

/** A whole collection, page by page, so no single answer is the size of all 1000 nodes' slices. */
async function listAll<T>(path: string, query: Record<string, string>): Promise<T[]> {
  const items: T[] = [];
  let token: string | undefined;
  do {
    const page: { items: T[]; metadata: { continue?: string } } = await c.admin.request("GET", path, { query: { ...query, limit: 100, continue: token } });
    items.push(...page.items);
    token = page.metadata.continue === "" ? undefined : page.metadata.continue;
  } while (token !== undefined);
  return items;
}

function attributeString(value: unknown): string {
  return typeof value === "object" && value !== null && "string" in value && typeof value.string === "string" ? value.string : "";
}
