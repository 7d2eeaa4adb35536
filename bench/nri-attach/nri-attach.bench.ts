/**
 * From RunPodSandbox to a configured interface, on the real node (make
 * bench-nri-attach). An observer NRI plugin (./observer.ts), registered
 * before netclaim, stamps each pod's RunPodSandbox and reports when the
 * pod's interface is up with its address and MTU (netlink notifications in
 * the pod's namespace) and when its first container is created. Three kinds
 * of pod, in one run:
 *   - plain: no interface; the baseline of pod start-up;
 *   - bare: the observer itself moves a stand-in NIC into the pod and
 *     configures it (rename, MTU, address, up) synchronously inside
 *     RunPodSandbox, nothing around it: the floor on this node and runtime;
 *   - netclaim: the same interface (name, MTU 9000, one address) from a DRA
 *     claim, attached by the agent running as its DaemonSet.
 * Phase 1 starts one pod at a time, the kinds interleaved (NRI_ATTACH_PODS
 * each, default 20, after one unmeasured warm-up each); phase 2 starts 8 at
 * once (NRI_ATTACH_BURSTS rounds, default 3) for bare and netclaim, p99 over
 * all their interfaces. "started" is pod POST → container started as the
 * runtime recorded it. Ends with one JSON line; every ratio compares figures
 * of this run.
 */
import { randomBytes } from "node:crypto";
import { createStandInNics } from "../../test/e2e/agent.ts";
import { busyboxPod, containerStartedAt, deletePods, node, type Manifest } from "../../test/e2e/harness.ts";
import { envCount } from "../env.ts";
import { kubeClientFrom } from "../kube-client.ts";
import { NetclaimSetup } from "../podstart/variants.ts";
import { ReadyWatch } from "../podstart/ready-watch.ts";
import { BARE_MOVE_ANNOTATION, Observer, WATCH_ANNOTATION, type PodTimes } from "./observer.ts";

const PODS = envCount("NRI_ATTACH_PODS", 20);
const BURSTS = envCount("NRI_ATTACH_BURSTS", 3);
const BURST = 8;
const READY_TIMEOUT_MS = 120_000;
const NAMESPACE = "default";
const INTERFACE = { name: "data0", mtu: 9000, address: "198.51.100.10/24" };
const WATCH = `${INTERFACE.name} ${INTERFACE.address} ${String(INTERFACE.mtu)}`;

const env = await node();
const client = kubeClientFrom(env.kubeconfig);
const run = randomBytes(3).toString("hex");
const labels = { "netclaim.dev/bench": `nri-attach-${run}` };

// netclaim's devices: a burst's 8 plus room for the ones still going back to the host.
const netclaim = new NetclaimSetup(BURST + 4, { interface: { name: INTERFACE.name, mtu: INTERFACE.mtu, addresses: [INTERFACE.address] } });
// The bare kind's devices: stand-in NICs like netclaim's, out of the agent's reach (its glob is ncb*).
const bareDevices = Array.from({ length: BURST }, (_, i) => `ncx${String(i).padStart(3, "0")}`);
let nextBare = 0;

type Kind = "plain" | "bare" | "netclaim";
const manifests: Record<Kind, (name: string) => Manifest> = {
  plain: (name) => busyboxPod({ name, labels }),
  bare: (name) => {
    const device = bareDevices[nextBare++ % bareDevices.length] ?? "";
    return busyboxPod({ name, labels, annotations: { [WATCH_ANNOTATION]: WATCH, [BARE_MOVE_ANNOTATION]: device } });
  },
  netclaim: (name) => busyboxPod({ name, labels, annotations: { [WATCH_ANNOTATION]: WATCH }, ...netclaim.podFields() }),
};

interface Sample extends PodTimes {
  started: number;
}
const samples = new Map<string, Sample[]>();
const record = (series: string, sample: Sample) => samples.set(series, [...(samples.get(series) ?? []), sample]);

let bareNics: { remove(): Promise<void> } | undefined;
const created = new Set<string>();
const observer = await Observer.start(env.nriSocket);
const watch = await ReadyWatch.open(client, NAMESPACE, `netclaim.dev/bench=nri-attach-${run}`);

/** Starts pods of one kind at once; returns each one's times once all run. */
async function start(kind: Kind, names: readonly string[]): Promise<Sample[]> {
  const manifest = manifests[kind];
  const requested = new Map<string, number>();
  const ready = names.map((name) => watch.whenReady(name, READY_TIMEOUT_MS));
  await Promise.all(names.map(async (name) => {
    created.add(name);
    requested.set(name, performance.timeOrigin + performance.now());
    await client.request("POST", `/api/v1/namespaces/${NAMESPACE}/pods`, { body: manifest(name) });
  }));
  await Promise.all(ready);
  return Promise.all(names.map(async (name) => {
    const started = (await containerStartedAt(name, NAMESPACE)) - (requested.get(name) ?? Number.NaN);
    const times = kind === "plain" ? { configured: Number.NaN, createContainer: Number.NaN } : await observer.times(`${NAMESPACE}/${name}`);
    return { started, ...times };
  }));
}

async function stop(names: readonly string[]): Promise<void> {
  await deletePods(names, NAMESPACE);
  for (const name of names) created.delete(name);
}

try {
  bareNics = await createStandInNics(bareDevices, "ncx-wires");
  await netclaim.acquire();
  for (let round = -1; round < PODS; round++) {
    for (const kind of ["plain", "bare", "netclaim"] as const) {
      const name = `nri-${run}-${kind}-${round < 0 ? "warmup" : String(round)}`;
      const [sample] = await start(kind, [name]);
      if (round >= 0 && sample !== undefined) record(kind, sample);
      await stop([name]);
    }
  }
  for (let round = 0; round < BURSTS; round++) {
    for (const kind of ["bare", "netclaim"] as const) {
      const names = Array.from({ length: BURST }, (_, i) => `nri-${run}-${kind}-b${String(round)}-${String(i)}`);
      for (const sample of await start(kind, names)) record(`${kind}_burst8`, sample);
      await stop(names);
    }
  }
} finally {
  watch.close();
  await deletePods([...created], NAMESPACE);
  observer.stop();
  await netclaim.release();
  await bareNics?.remove();
  client.close();
}

/** Nearest-rank percentile of an ascending list. */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}
const round1 = (ms: number) => Math.round(ms * 10) / 10;
const round3 = (x: number) => Math.round(x * 1000) / 1000;

const figures: Record<string, number | string> = { benchmark: "nri-attach", pods_per_kind: PODS, burst: BURST, bursts: BURSTS };
for (const [series, list] of samples) {
  for (const metric of ["configured", "createContainer", "started"] as const) {
    const values = list.map((s) => s[metric]).filter((v) => !Number.isNaN(v));
    if (values.length === 0) continue;
    const p50 = percentile(values, 50);
    const p99 = percentile(values, 99);
    console.log(`${series.padEnd(15)} ${metric.padEnd(15)} n=${String(values.length)} p50=${p50.toFixed(1)} ms p99=${p99.toFixed(1)} ms max=${Math.max(...values).toFixed(1)} ms`);
    figures[`${series}_${metric}_p50_ms`] = round1(p50);
    figures[`${series}_${metric}_p99_ms`] = round1(p99);
  }
}
const p50 = (series: string, metric: keyof Sample) => percentile((samples.get(series) ?? []).map((s) => s[metric]), 50);
const p99 = (series: string, metric: keyof Sample) => percentile((samples.get(series) ?? []).map((s) => s[metric]), 99);
// The headline figures (#21).
figures["nri_configured_p50_ms"] = round1(p50("netclaim", "configured"));
figures["nri_configured_p99_ms"] = round1(p99("netclaim", "configured"));
figures["bare_move_p50_ms"] = round1(p50("bare", "configured"));
figures["configured_vs_bare_move_p50"] = round3(p50("netclaim", "configured") / p50("bare", "configured"));
figures["configured_p99_vs_own_p50"] = round3(p99("netclaim", "configured") / p50("netclaim", "configured"));
figures["started_over_plain_ms"] = round1(p50("netclaim", "started") - p50("plain", "started"));
figures["started_over_plain_ratio"] = round3(p50("netclaim", "started") / p50("plain", "started"));
figures["burst8_configured_p99_ms"] = round1(p99("netclaim_burst8", "configured"));
figures["burst8_bare_move_p50_ms"] = round1(p50("bare_burst8", "configured"));
figures["burst8_configured_vs_bare_move_p50"] = round3(p50("netclaim_burst8", "configured") / p50("bare_burst8", "configured"));
figures["burst8_configured_p99_vs_own_p50"] = round3(p99("netclaim_burst8", "configured") / p50("netclaim_burst8", "configured"));
const errors = observer.errors();
if (errors.length > 0) console.log(`observer errors: ${errors.join("; ")}`);
console.log(JSON.stringify(figures));
