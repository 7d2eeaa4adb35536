/**
 * Pod start-up on the real node (make bench-podstart): create → Ready for
 * each variant in variants.ts, PODSTART_PODS pods each (default 20), p50 and
 * p99. Pods are created one at a time, the variants interleaved, so each pod
 * starts on an otherwise idle node and drift hits every variant alike; one
 * unmeasured warm-up pod per variant goes first. The clock starts before the
 * create request and stops when a watch sees the pod's Ready condition
 * ("ready"). The kubelet notices started containers by relisting the runtime
 * every second, which rounds "ready" to about 1 s; "started" stops the clock
 * at the container's start as containerd recorded it, and shows the
 * differences between variants (CNI, Multus, netclaim) that "ready" hides.
 * Ends with one JSON line; ratios compare variants measured in this run.
 */
import { randomBytes } from "node:crypto";
import { envCount } from "../env.ts";
import { kubeClientFrom } from "../kube-client.ts";
import { containerStartedAt, deletePods, node } from "../../test/e2e/harness.ts";
import { bothVariant, draVariant, multusVariant, NetclaimSetup, plainVariant, type Variant } from "./variants.ts";
import { ReadyWatch } from "./ready-watch.ts";

const PODS = envCount("PODSTART_PODS", 20);
const READY_TIMEOUT_MS = 120_000;
const NAMESPACE = "default";

const env = await node();
const client = kubeClientFrom(env.kubeconfig);

const run = randomBytes(3).toString("hex");
const labels = { "netclaim.dev/bench": `podstart-${run}` };
// Each pod is deleted once measured (the default network's /26 could not hold 4 × 21
// pods at once), so the DRA variants need a device each, plus slack while one is returned.
const netclaim = new NetclaimSetup(4);
const variants: Variant[] = [plainVariant, multusVariant(PODS), draVariant(netclaim), bothVariant(netclaim, PODS)];
const created: string[] = [];
const samples = new Map<string, { ready: number[]; started: number[] }>(variants.map((v) => [v.name, { ready: [], started: [] }]));

const watch = await ReadyWatch.open(client, NAMESPACE, `netclaim.dev/bench=podstart-${run}`);
try {
  for (const variant of variants) await variant.setup();
  for (let round = -1; round < PODS; round++) {
    for (const variant of variants) {
      const name = `podstart-${run}-${variant.name}-${round < 0 ? "warmup" : String(round)}`;
      created.push(name);
      const ready = watch.whenReady(name, READY_TIMEOUT_MS);
      const requested = performance.now();
      await client.request("POST", `/api/v1/namespaces/${NAMESPACE}/pods`, { body: variant.pod(name, labels) });
      const readyMs = (await ready) - requested;
      const startedMs = (await containerStartedAt(name, NAMESPACE)) - (performance.timeOrigin + requested);
      if (round >= 0) {
        samples.get(variant.name)?.ready.push(readyMs);
        samples.get(variant.name)?.started.push(startedMs);
      }
      await deletePods([name], NAMESPACE);
    }
  }
} finally {
  watch.close();
  await deletePods(created, NAMESPACE);
  for (const variant of variants) await variant.teardown();
  client.close();
}

/** Nearest-rank percentile of an ascending list. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

const round1 = (ms: number) => Math.round(ms * 10) / 10;
const figures: Record<string, number | string> = { benchmark: "podstart", pods_per_variant: PODS };
const p50s = new Map<string, { ready: number; started: number }>();
for (const [name, values] of samples) {
  const summary = { ready: 0, started: 0 };
  for (const metric of ["ready", "started"] as const) {
    const sorted = [...values[metric]].sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    summary[metric] = p50;
    console.log(`${name.padEnd(8)} ${metric.padEnd(7)} n=${String(sorted.length)} p50=${p50.toFixed(1)} ms p99=${p99.toFixed(1)} ms min=${(sorted[0] ?? 0).toFixed(1)} ms max=${(sorted.at(-1) ?? 0).toFixed(1)} ms`);
    figures[`${name}_${metric}_p50_ms`] = round1(p50);
    figures[`${name}_${metric}_p99_ms`] = round1(p99);
  }
  p50s.set(name, summary);
}
const plain = p50s.get("plain");
for (const [name, p50] of p50s) {
  if (name === "plain" || plain === undefined) continue;
  figures[`${name}_vs_plain_ready_p50`] = Math.round((p50.ready / plain.ready) * 1000) / 1000;
  figures[`${name}_vs_plain_started_p50`] = Math.round((p50.started / plain.started) * 1000) / 1000;
}
// The headline ratios, on containerd's start time (the kubelet's Ready is quantised to 1 s).
const ratio = (a: string, b: string): number => {
  const x = p50s.get(a);
  const y = p50s.get(b);
  return x === undefined || y === undefined ? Number.NaN : Math.round((x.started / y.started) * 1000) / 1000;
};
figures["dra_vs_plain_p50"] = ratio("dra", "plain");
figures["dra_vs_multus_p50"] = ratio("dra", "multus");
console.log(JSON.stringify(figures));
