/**
 * Inventory scan benchmark (root, real kernel and sysfs): the cost of the
 * scan a link event asks for, against the full scan, on a host with as many
 * links as a busy node (LINKS veths; every pod of the bridge CNI plugin adds
 * one on the host, and the e2e node stands 256 devices in with veths).
 *
 * In one run, alternating, ROUNDS times each:
 *   full:  every link read (the start, a resync, lost events),
 *   event: one link named by an event, the others taken from the scan
 *          before (inventory.ts); the named link's MTU changes between
 *          rounds, and the bench fails unless the event scan sees it.
 * Each figure is the wall time and the process's CPU time (every thread:
 * the asynchronous reads run on libuv's pool) of discovery, the policy and
 * the report, as Inventory runs them. Prints p50/p99 and ends with one JSON
 * line; `event_vs_full_scan_p50` is the headline.
 */
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { devicePolicySchema, netlinkLinkKinds, scanInventory, SysfsRoot } from "../../src/inventory/index.ts";
import { NetlinkClient } from "../../src/netlink/index.ts";

const LINKS = Number(process.env.BENCH_LINKS ?? 256);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);
const PREFIX = `ncsb${process.pid % 1000}x`;
const pairs = Math.ceil(LINKS / 2);

const ipBatch = (commands: readonly string[]): void => {
  execFileSync("ip", ["-force", "-batch", "-"], { input: commands.join("\n"), stdio: ["pipe", "ignore", "ignore"] });
};

type Sample = number[];
const p = (xs: Sample, q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};

async function main(): Promise<void> {
  ipBatch(Array.from({ length: pairs }, (_, i) => `link add ${PREFIX}${i} type veth peer name ${PREFIX}${i}p`));
  const netlink = new NetlinkClient();
  await netlink.start();
  const sysfs = new SysfsRoot("/");
  // Half the bench's links published, as a node publishes its NICs and passes its pods' veths over.
  const policy = devicePolicySchema.parse({ include: [{ ifName: `${PREFIX}*p`, kinds: ["veth"] }] });
  const linkKinds = netlinkLinkKinds(netlink);
  const named = `${PREFIX}0p`;
  const results: Record<string, Sample> = {};
  const add = (name: string, value: number): void => {
    (results[name] ??= []).push(value);
  };
  try {
    let earlier = (await scanInventory(sysfs, policy, { linkKinds })).reports.map((r) => r.device);
    const timed = async (name: string, scan: () => Promise<Awaited<ReturnType<typeof scanInventory>>>): Promise<Awaited<ReturnType<typeof scanInventory>>> => {
      await sleep(20);
      const cpu = process.cpuUsage();
      const t0 = performance.now();
      const snapshot = await scan();
      add(`${name}_ms`, performance.now() - t0);
      const used = process.cpuUsage(cpu);
      add(`${name}_cpu_ms`, (used.user + used.system) / 1000);
      return snapshot;
    };
    for (let round = -1; round < ROUNDS; round++) {
      const mtu = 1300 + (round + 1) * 2;
      execFileSync("ip", ["link", "set", named, "mtu", String(mtu)]);
      const event = await timed("event", () => scanInventory(sysfs, policy, { linkKinds, earlier: { devices: earlier, changed: new Set([named]) } }));
      const seen = event.reports.find((r) => r.device.ifName === named)?.device.mtu;
      if (seen !== mtu) throw new Error(`the event scan saw ${named} with MTU ${String(seen)}, not ${mtu}`);
      const full = await timed("full", () => scanInventory(sysfs, policy, { linkKinds }));
      if (full.reports.length !== event.reports.length) throw new Error(`the full scan found ${full.reports.length} links, the event scan ${event.reports.length}`);
      earlier = full.reports.map((r) => r.device);
      // The first round warms both paths up.
      if (round < 0) for (const k of Object.keys(results)) results[k] = [];
    }
    add("links", earlier.length);
  } finally {
    await netlink.close();
    ipBatch(Array.from({ length: pairs }, (_, i) => `link del ${PREFIX}${i}`));
  }
  for (const [k, xs] of Object.entries(results).sort()) {
    console.log(`${k.padEnd(14)} n=${String(xs.length).padStart(3)}  p50 ${p(xs, 0.5).toFixed(2).padStart(8)}  p99 ${p(xs, 0.99).toFixed(2).padStart(8)}`);
  }
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  const p50 = (k: string): number => p(results[k] ?? [], 0.5);
  console.log(JSON.stringify({
    benchmark: "inventory-scan",
    links: p50("links"),
    event_vs_full_scan_p50: round(p50("event_ms") / p50("full_ms")),
    event_vs_full_cpu_p50: round(p50("event_cpu_ms") / p50("full_cpu_ms")),
    ...Object.fromEntries(["event_ms", "full_ms", "event_cpu_ms", "full_cpu_ms"].flatMap((k) => [[`${k.replace(/_ms$/, "")}_p50_ms`, round(p50(k))], [`${k.replace(/_ms$/, "")}_p99_ms`, round(p(results[k] ?? [], 0.99))]])),
  }));
}

await main();
