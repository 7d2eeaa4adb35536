/**
 * What the bench reads off the control plane: the API server's request
 * counters (Prometheus text from /metrics, fetched with kubectl so no
 * credentials are handled here), etcd's database size (its /metrics on the
 * client port, plain HTTP on loopback), and each component's RSS and CPU
 * time from /proc, which costs the API server nothing while it is measured.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** One Prometheus sample line: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const label of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[label[1]!] = label[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** apiserver_request_total by "VERB resource[/subresource]", resource requests only (not /metrics, /readyz). */
export type RequestCounts = Map<string, number>;

export async function apiserverRequests(kubectl: string, kubeconfig: string): Promise<RequestCounts> {
  const { stdout } = await run(kubectl, ["--kubeconfig", kubeconfig, "get", "--raw", "/metrics"], { maxBuffer: 256 * 2 ** 20 });
  const counts: RequestCounts = new Map();
  for (const s of parsePrometheus(stdout)) {
    if (s.name !== "apiserver_request_total" || (s.labels.resource ?? "") === "") continue;
    const key = `${s.labels.verb ?? ""} ${s.labels.resource ?? ""}${s.labels.subresource ? `/${s.labels.subresource}` : ""}`;
    counts.set(key, (counts.get(key) ?? 0) + s.value);
  }
  return counts;
}

/** The API server's Go heap in use (go_memstats_heap_inuse_bytes): what it holds, without the RSS the Go runtime keeps from earlier peaks. */
export async function apiserverHeapInUse(kubectl: string, kubeconfig: string): Promise<number> {
  const { stdout } = await run(kubectl, ["--kubeconfig", kubeconfig, "get", "--raw", "/metrics"], { maxBuffer: 256 * 2 ** 20 });
  return parsePrometheus(stdout).find((s) => s.name === "go_memstats_heap_inuse_bytes")?.value ?? Number.NaN;
}

/** after − before, leaving out the keys `skip` matches and those that did not move. */
export function requestDelta(before: RequestCounts, after: RequestCounts, skip: (key: string) => boolean): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [key, value] of after) {
    if (skip(key)) continue;
    const moved = value - (before.get(key) ?? 0);
    if (moved > 0) delta.set(key, moved);
  }
  return new Map([...delta].sort((a, b) => b[1] - a[1]));
}

/** A histogram's cumulative buckets, sum and count, for the series whose labels include `labels`. */
export interface Histogram {
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

export function histogram(text: string, name: string, labels: Readonly<Record<string, string>>): Histogram {
  const matches = (s: Sample): boolean => Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  const samples = parsePrometheus(text).filter(matches);
  return {
    buckets: samples
      .filter((s) => s.name === `${name}_bucket`)
      .map((s) => ({ le: s.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels.le), count: s.value }))
      .sort((a, b) => a.le - b.le),
    sum: samples.find((s) => s.name === `${name}_sum`)?.value ?? 0,
    count: samples.find((s) => s.name === `${name}_count`)?.value ?? 0,
  };
}

/** What was observed between two scrapes of one histogram. */
export function histogramDelta(before: Histogram, after: Histogram): Histogram {
  return {
    buckets: after.buckets.map((b) => ({ le: b.le, count: b.count - (before.buckets.find((x) => x.le === b.le)?.count ?? 0) })),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/** The upper bound of the bucket holding the p-th percentile: the most a histogram tells of it. */
export function histogramPercentile(h: Histogram, p: number): number {
  const rank = (p / 100) * h.count;
  return h.buckets.find((b) => b.count >= rank)?.le ?? Number.NaN;
}

export interface EtcdSize {
  /** etcd_mvcc_db_total_size_in_use_in_bytes: the live part of the bbolt file. */
  inUse: number;
  /** etcd_mvcc_db_total_size_in_bytes: the file, free pages included. */
  total: number;
  keys: number;
}

export async function etcdSize(port: number): Promise<EtcdSize> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  const samples = parsePrometheus(await response.text());
  const value = (name: string): number => samples.find((s) => s.name === name)?.value ?? Number.NaN;
  return {
    inUse: value("etcd_mvcc_db_total_size_in_use_in_bytes"),
    total: value("etcd_mvcc_db_total_size_in_bytes"),
    keys: value("etcd_debugging_mvcc_keys_total"),
  };
}

export interface ProcessUsage {
  rssBytes: number;
  /** user + system CPU time. */
  cpuMs: number;
}

const CLOCK_TICKS_PER_S = 100;

/** RSS and CPU time of a control-plane component, by the pid file cluster.sh wrote. */
export async function componentUsage(clusterDir: string, name: string): Promise<ProcessUsage> {
  return processUsage(Number((await readFile(join(clusterDir, `${name}.pid`), "utf8")).trim()));
}

export async function processUsage(pid: number): Promise<ProcessUsage> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN);
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const raw = await readFile(`/proc/${pid}/stat`, "utf8");
  const stat = raw.slice(raw.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(stat[11]) + Number(stat[12]);
  return { rssBytes: rssKiB * 1024, cpuMs: (ticks * 1000) / CLOCK_TICKS_PER_S };
}
