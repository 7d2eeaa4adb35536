/**
 * The agent at scale on one real node (make bench-scale-node): the agent as
 * its DaemonSet pod from its image, publishing SCALE_NODE_DEVICES stand-in
 * NICs (default 256: veths whose far ends wait in a namespace of their own,
 * so that a NIC moving into a pod changes no other host link), while pods
 * with one netclaim interface each churn for SCALE_NODE_MINUTES (default
 * 10): SCALE_NODE_PODS of them (default 50) kept running, the oldest
 * deleted as each new one starts, a few starts at once. The test node's
 * pod network is a /26, so about 60 pods fit at once, not the kubelet's
 * 110; every pod of the run is counted.
 *
 * Sampled every SAMPLE_SECONDS: the agent's RSS (from /proc, the process the
 * runtime reports for its container; anonymous and file-backed apart), its
 * main thread's and its engine thread's V8 heaps (used and reserved) and
 * external memory, the longest event-loop delay since the sample before, its
 * prepare and attach histograms (docs/metrics.md), and the latency of its
 * /readyz endpoint, polled every 100 ms, which the agent answers on its
 * event loop: a stall of the loop shows there, on top of this machine's own
 * scheduling noise and the bench's own client.
 *
 * The event-loop figure is prom-client's (monitorEventLoopDelay at 10 ms
 * resolution, reset at each scrape, which only this bench makes): each value
 * is the time between two of its 10 ms ticks, so a value less 10 ms is at
 * most the longest stall in that window (a stall that ends before a tick
 * was due shows less). Beside it, the agent's own
 * netclaim_event_loop_busy_max_seconds: the main thread's CPU time between
 * two ticks of its 10 ms timer, which leaves out the time the thread waited
 * for a CPU; the goal of no stall over 5 ms is the agent's to meet there.
 *
 * Also sampled, from /proc: the agent's CPU time (every thread), and its
 * main thread's time on a CPU, time waiting in the run queue for one, and
 * how often it was switched in (schedstat). A stall of the event loop is
 * either the loop's own work or the thread waiting for a CPU; on a 2-core
 * machine that runs the whole cluster, the wait is most of it.
 *
 * Figures per minute, then: RSS growth from minute 2 to the end (goal < 5%)
 * beside the heap's, prepare and attach p99 (the upper bound of the
 * histogram bucket) and mean per window, early against late. Ends with one
 * JSON line.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { agentEndpoint } from "../../test/e2e/agent.ts";
import { busyboxPod, crictl, node } from "../../test/e2e/harness.ts";
import { ReadyWatch } from "../podstart/ready-watch.ts";
import { envNumber } from "../env.ts";
import { kubeClientFrom } from "../kube-client.ts";
import { NetclaimSetup } from "../podstart/variants.ts";
import { histogram, histogramDelta, histogramPercentile, parsePrometheus, type Histogram } from "./metrics.ts";
import { parseSmaps, smapsGrowth, type Mapping } from "./smaps.ts";
import { percentile } from "./util.ts";

const MINUTES = envNumber("SCALE_NODE_MINUTES", 10, { integer: false, min: Number.MIN_VALUE });
const DEVICES = envNumber("SCALE_NODE_DEVICES", 256, { integer: true, min: 1 });
const PODS = envNumber("SCALE_NODE_PODS", 50, { integer: true, min: 1 });
const STARTS_AT_ONCE = 4;
const SAMPLE_SECONDS = 15;
const READY_TIMEOUT_MS = 180_000;
/** "Minute 2": where the growth is measured from (earlier in a shorter run). */
const MINUTE2_AT_S = Math.min(120, (MINUTES * 60) / 5);
const NAMESPACE = "default";

const env = await node();
const client = kubeClientFrom(env.kubeconfig);
const run = randomBytes(3).toString("hex");
const labels = { "netclaim.dev/bench": `scale-node-${run}` };
const netclaim = new NetclaimSetup(DEVICES);

interface Sample {
  atS: number;
  rssBytes: number;
  /** Of rssBytes, anonymous memory (heaps, malloc) and mapped files (code). */
  rssAnonBytes: number;
  rssFileBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** Of heapTotalBytes, the young generation (V8's new space), which V8 grows with the allocation rate. */
  heapNewTotalBytes: number;
  /** The engine thread's own V8 heap, which the heap figures above leave out. */
  engineHeapUsedBytes: number;
  engineHeapTotalBytes: number;
  /** The link-events thread's, likewise. */
  linkEventsHeapUsedBytes: number;
  linkEventsHeapTotalBytes: number;
  externalBytes: number;
  /** The longest time between two ticks of the agent's 10 ms event-loop monitor since the sample before. */
  loopLagMaxS: number;
  /** The main thread's longest CPU time between two of the agent's 10 ms ticks since the sample before: its own work, without waiting for a CPU. */
  loopBusyMaxS: number;
  prepare: Histogram;
  attach: Histogram;
  podsStarted: number;
  /** CPU time of every thread of the agent (utime + stime). */
  cpuS: number;
  /** The main thread's schedstat: on a CPU, waiting for one, times switched in. */
  mainRunS: number;
  mainWaitS: number;
  mainSwitches: number;
}
const samples: Sample[] = [];
/** The agent's mappings at minute 2, to tell where anonymous memory grew by the end. */
let smapsAtMinute2: Mapping[] | undefined;
let smapsAtEnd: Mapping[];
const readyMs: { atS: number; ms: number }[] = [];
const probeMs: number[] = [];
const created: string[] = [];
const live: string[] = [];
let sequence = 0;
let stopping = false;
// A function, not the variable: the churn's end flips it while these loops await.
const running = (): boolean => !stopping;

const log = (line: string): void => {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
};

await netclaim.acquire();
log(`agent up, ${DEVICES} devices published`);
const pid = await agentPid();
const watch = await ReadyWatch.open(client, NAMESPACE, `netclaim.dev/bench=scale-node-${run}`);
const t0 = performance.now();
const elapsedS = (): number => (performance.now() - t0) / 1000;
try {
  const sampler = (async () => {
    while (running()) {
      samples.push(await sample());
      const last = samples.at(-1)!;
      if (smapsAtMinute2 === undefined && last.atS >= MINUTE2_AT_S) smapsAtMinute2 = parseSmaps(await readFile(`/proc/${pid}/smaps`, "utf8"));
      const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
      log(`${Math.round(last.atS)} s: cpu ${last.cpuS.toFixed(1)} s (main ${last.mainRunS.toFixed(1)}, waited ${last.mainWaitS.toFixed(1)}), rss ${mib(last.rssBytes)} MiB, heap ${mib(last.heapUsedBytes)}/${mib(last.heapTotalBytes)} MiB, external ${mib(last.externalBytes)} MiB, loop lag max ${(last.loopLagMaxS * 1000).toFixed(1)} ms (busy ${(last.loopBusyMaxS * 1000).toFixed(1)}), ${last.podsStarted} pods started, ${live.length} running`);
      await sleep(SAMPLE_SECONDS * 1000);
    }
  })();
  const prober = (async () => {
    while (running()) {
      const started = performance.now();
      await agentEndpoint("/readyz");
      probeMs.push(performance.now() - started);
      await sleep(100);
    }
  })();
  const deadline = t0 + MINUTES * 60_000;
  await Promise.all(
    Array.from({ length: STARTS_AT_ONCE }, async () => {
      while (performance.now() < deadline) {
        if (live.length >= PODS - STARTS_AT_ONCE) {
          const oldest = live.shift();
          if (oldest !== undefined) await client.request("DELETE", `/api/v1/namespaces/${NAMESPACE}/pods/${oldest}`);
        }
        await startPod();
      }
    }),
  );
  stopping = true;
  await Promise.all([sampler, prober]);
  samples.push(await sample());
  smapsAtEnd = parseSmaps(await readFile(`/proc/${pid}/smaps`, "utf8"));
} finally {
  stopping = true;
  watch.close();
  await deleteAll(created);
  await netclaim.release();
  client.close();
}

async function startPod(): Promise<void> {
  const name = `scale-node-${run}-${String(sequence++).padStart(5, "0")}`;
  created.push(name);
  const ready = watch.whenReady(name, READY_TIMEOUT_MS);
  const requested = performance.now();
  await client.request("POST", `/api/v1/namespaces/${NAMESPACE}/pods`, { body: busyboxPod({ name, labels, ...netclaim.podFields() }) });
  readyMs.push({ atS: elapsedS(), ms: (await ready) - requested });
  live.push(name);
}

async function sample(): Promise<Sample> {
  const metrics = (await agentEndpoint("/metrics")).body;
  const [status, stat, schedstat] = await Promise.all([`/proc/${pid}/status`, `/proc/${pid}/stat`, `/proc/${pid}/task/${pid}/schedstat`].map((f) => readFile(f, "utf8")));
  // After the command's closing parenthesis: state is field 3, utime and stime fields 14 and 15, in ticks of 1/100 s.
  const statFields = (stat ?? "").slice((stat ?? "").lastIndexOf(")") + 2).split(" ");
  const [runNs, waitNs, switches] = (schedstat ?? "").trim().split(" ").map(Number);
  const gauges = parsePrometheus(metrics);
  const gauge = (name: string, labels: Record<string, string> = {}): number =>
    gauges.find((g) => g.name === name && Object.entries(labels).every(([k, v]) => g.labels[k] === v))?.value ?? Number.NaN;
  const statusKiB = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status ?? "")?.[1] ?? Number.NaN);
  return {
    atS: elapsedS(),
    rssBytes: statusKiB("VmRSS") * 1024,
    rssAnonBytes: statusKiB("RssAnon") * 1024,
    rssFileBytes: statusKiB("RssFile") * 1024,
    heapUsedBytes: gauge("netclaim_nodejs_heap_size_used_bytes"),
    heapTotalBytes: gauge("netclaim_nodejs_heap_size_total_bytes"),
    heapNewTotalBytes: gauge("netclaim_nodejs_heap_space_size_total_bytes", { space: "new" }),
    engineHeapUsedBytes: gauge("netclaim_thread_heap_bytes", { thread: "engine", kind: "used" }),
    engineHeapTotalBytes: gauge("netclaim_thread_heap_bytes", { thread: "engine", kind: "total" }),
    linkEventsHeapUsedBytes: gauge("netclaim_thread_heap_bytes", { thread: "link-events", kind: "used" }),
    linkEventsHeapTotalBytes: gauge("netclaim_thread_heap_bytes", { thread: "link-events", kind: "total" }),
    externalBytes: gauge("netclaim_nodejs_external_memory_bytes"),
    loopLagMaxS: gauge("netclaim_nodejs_eventloop_lag_max_seconds"),
    loopBusyMaxS: gauge("netclaim_event_loop_busy_max_seconds"),
    prepare: histogram(metrics, "netclaim_dra_claim_operation_seconds", { operation: "prepare" }),
    attach: histogram(metrics, "netclaim_engine_operation_seconds", { operation: "attach" }),
    podsStarted: readyMs.length,
    cpuS: (Number(statFields[11]) + Number(statFields[12])) / 100,
    mainRunS: (runNs ?? Number.NaN) / 1e9,
    mainWaitS: (waitNs ?? Number.NaN) / 1e9,
    mainSwitches: switches ?? Number.NaN,
  };
}

/** The pid of the agent's container, as the runtime reports it. */
async function agentPid(): Promise<number> {
  const ids = (await crictl(["ps", "--namespace", "^netclaim$", "--name", "^agent$", "--state", "running", "-q"])).trim().split("\n").filter(Boolean);
  if (ids.length !== 1) throw new Error(`expected one running agent container, found ${ids.length}`);
  const inspected = JSON.parse(await crictl(["inspect", "-o", "json", ids[0]!])) as { info?: { pid?: number } };
  const found = inspected.info?.pid;
  if (found === undefined) throw new Error("crictl inspect reports no pid for the agent's container");
  return found;
}

async function deleteAll(names: readonly string[]): Promise<void> {
  for (const name of names) await client.request("DELETE", `/api/v1/namespaces/${NAMESPACE}/pods/${name}`).catch(() => undefined);
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    const list = await client.request<{ items: unknown[] }>("GET", `/api/v1/namespaces/${NAMESPACE}/pods`, { query: { labelSelector: `netclaim.dev/bench=scale-node-${run}` } });
    if (list.items.length === 0) return;
    await sleep(1000);
  }
  throw new Error(`pods of run ${run} still there after 300 s`);
}

/** The sample nearest to `atS`. */
function at(atS: number): Sample {
  return samples.reduce((best, s) => (Math.abs(s.atS - atS) < Math.abs(best.atS - atS) ? s : best));
}

const first = samples[0]!;
const minute2 = at(MINUTE2_AT_S);
const end = samples.at(-1)!;
const middle = at((minute2.atS + end.atS) / 2);
const windows = { early: [minute2, middle], late: [middle, end] } as const;
const anonGrowth = smapsGrowth(smapsAtMinute2 ?? [], smapsAtEnd);
for (const m of anonGrowth.largest) log(`anonymous memory, minute 2 to end: ${m.kind} ${m.address} (${m.sizeKiB} KiB ${m.perms} ${m.name}) ${m.beforeKiB} -> ${m.afterKiB} KiB`);
const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;
const figures: Record<string, number | string> = {
  benchmark: "scale-node",
  devices: DEVICES,
  pods_kept_running: PODS,
  minutes: MINUTES,
  pods_started: readyMs.length,
  pod_starts_per_minute: round(readyMs.length / (end.atS / 60)),
  rss_mib_first: round(first.rssBytes / 2 ** 20),
  rss_mib_minute2: round(minute2.rssBytes / 2 ** 20),
  rss_mib_end: round(end.rssBytes / 2 ** 20),
  rss_growth_pct_minute2_to_end: round(((end.rssBytes - minute2.rssBytes) / minute2.rssBytes) * 100, 2),
  rss_minute2_at_s: Math.round(minute2.atS),
  rss_anon_mib_minute2: round(minute2.rssAnonBytes / 2 ** 20),
  rss_anon_mib_end: round(end.rssAnonBytes / 2 ** 20),
  rss_file_mib_minute2: round(minute2.rssFileBytes / 2 ** 20),
  rss_file_mib_end: round(end.rssFileBytes / 2 ** 20),
  engine_heap_used_mib_minute2: round(minute2.engineHeapUsedBytes / 2 ** 20),
  engine_heap_used_mib_end: round(end.engineHeapUsedBytes / 2 ** 20),
  engine_heap_total_mib_minute2: round(minute2.engineHeapTotalBytes / 2 ** 20),
  engine_heap_total_mib_end: round(end.engineHeapTotalBytes / 2 ** 20),
  link_events_heap_used_mib_minute2: round(minute2.linkEventsHeapUsedBytes / 2 ** 20),
  link_events_heap_used_mib_end: round(end.linkEventsHeapUsedBytes / 2 ** 20),
  link_events_heap_total_mib_minute2: round(minute2.linkEventsHeapTotalBytes / 2 ** 20),
  link_events_heap_total_mib_end: round(end.linkEventsHeapTotalBytes / 2 ** 20),
  heap_used_mib_minute2: round(minute2.heapUsedBytes / 2 ** 20),
  heap_used_mib_end: round(end.heapUsedBytes / 2 ** 20),
  heap_total_mib_minute2: round(minute2.heapTotalBytes / 2 ** 20),
  heap_total_mib_end: round(end.heapTotalBytes / 2 ** 20),
  heap_new_total_mib_minute2: round(minute2.heapNewTotalBytes / 2 ** 20),
  heap_new_total_mib_end: round(end.heapNewTotalBytes / 2 ** 20),
  external_mib_minute2: round(minute2.externalBytes / 2 ** 20),
  external_mib_end: round(end.externalBytes / 2 ** 20),
  // From the process's mappings (bench/scale/smaps.ts): where the anonymous memory grew.
  ...Object.fromEntries(Object.entries(anonGrowth.byKind).map(([kind, kib]) => [`anon_growth_mib_${kind.replaceAll("-", "_")}`, round(kib / 1024, 2)])),
  // The first sample's window holds the agent's start (publishing, recovery), not the churn.
  event_loop_lag_max_ms: round(Math.max(...samples.slice(1).map((s) => s.loopLagMaxS)) * 1000, 2),
  event_loop_busy_max_ms: round(Math.max(...samples.slice(1).map((s) => s.loopBusyMaxS)) * 1000, 2),
  // The goal is no stall of the agent's own over 5 ms: in how many sample windows was there one.
  event_loop_busy_windows_over_5ms: `${String(samples.slice(1).filter((s) => s.loopBusyMaxS > 0.005).length)}/${String(samples.length - 1)}`,
};
for (const [window, [from, to]] of Object.entries(windows)) {
  for (const operation of ["prepare", "attach"] as const) {
    const h = histogramDelta(from[operation], to[operation]);
    figures[`${operation}_${window}_count`] = h.count;
    figures[`${operation}_${window}_mean_ms`] = round((h.sum / h.count) * 1000, 2);
    figures[`${operation}_${window}_p99_le_ms`] = histogramPercentile(h, 99) * 1000;
  }
  const pods = to.podsStarted - from.podsStarted;
  const seconds = to.atS - from.atS;
  figures[`agent_cpu_ms_per_pod_${window}`] = round(((to.cpuS - from.cpuS) * 1000) / pods, 1);
  figures[`main_thread_cpu_ms_per_pod_${window}`] = round(((to.mainRunS - from.mainRunS) * 1000) / pods, 1);
  figures[`main_thread_cpu_share_${window}`] = round((to.mainRunS - from.mainRunS) / seconds, 3);
  figures[`main_thread_runqueue_wait_share_${window}`] = round((to.mainWaitS - from.mainWaitS) / seconds, 3);
  figures[`main_thread_switches_per_s_${window}`] = Math.round((to.mainSwitches - from.mainSwitches) / seconds);
  const ready = readyMs.filter((r) => r.atS > from.atS && r.atS <= to.atS).map((r) => r.ms).sort((a, b) => a - b);
  figures[`pod_ready_${window}_p50_ms`] = round(percentile(ready, 50));
  figures[`pod_ready_${window}_p99_ms`] = round(percentile(ready, 99));
}
const whole = { prepare: histogramDelta(first.prepare, end.prepare), attach: histogramDelta(first.attach, end.attach) };
figures.prepare_p99_le_ms = histogramPercentile(whole.prepare, 99) * 1000;
figures.attach_p99_le_ms = histogramPercentile(whole.attach, 99) * 1000;
const probes = [...probeMs].sort((a, b) => a - b);
figures.readyz_probes = probes.length;
figures.readyz_p50_ms = round(percentile(probes, 50), 2);
figures.readyz_p99_ms = round(percentile(probes, 99), 2);
figures.readyz_max_ms = round(probes.at(-1) ?? Number.NaN, 2);
figures.readyz_over_5ms_above_p50 = probes.filter((ms) => ms > percentile(probes, 50) + 5).length;
console.log(JSON.stringify(figures));
