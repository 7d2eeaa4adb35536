/**
 * Helpers for root tests on the real kernel: throw-away network namespaces
 * and stand-in NICs (veth, bridge) named nctest-*, and normalised `ip -json`
 * dumps to compare host state before and after (tests only observe with ip).
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export function tryIp(...args: string[]): void {
  try {
    ip(...args);
  } catch {
    // Cleanup of something already gone.
  }
}

let counter = 0;
/** A unique short suffix per test object: pid-based so parallel suites never clash. */
export function uniq(): string {
  counter += 1;
  return `${(process.pid % 1000).toString(36)}${counter.toString(36)}`;
}

export interface Netns {
  name: string;
  path: string;
  remove(): void;
}

export function makeNetns(): Netns {
  const name = `nctest-${uniq()}`;
  ip("netns", "add", name);
  return { name, path: `/var/run/netns/${name}`, remove: () => { tryIp("netns", "del", name); } };
}

/** A veth pair; the returned end is the "NIC", the peer stays on the host so the NIC has carrier. */
export function makeVeth(): string {
  const name = `nct${uniq()}a`;
  ip("link", "add", name, "type", "veth", "peer", "name", `${name.slice(0, -1)}b`);
  ip("link", "set", `${name.slice(0, -1)}b`, "up");
  return name;
}

export function removeLink(name: string): void {
  tryIp("link", "del", name);
  tryIp("link", "del", `${name.slice(0, -1)}b`);
}

/** Gives a test NIC host state worth restoring: addresses, routes in main and another table, up. */
export function configureHostSide(name: string, n: number): void {
  ip("link", "set", name, "mtu", "1450");
  ip("addr", "add", `198.51.100.${n}/24`, "dev", name);
  ip("addr", "add", `fd00:${n.toString(16)}::${n.toString(16)}/64`, "dev", name, "nodad");
  ip("link", "set", name, "up");
  // Never 192.0.2.0/24 or 203.0.113.0/24 on the host: the VM's own network and its package registries.
  ip("route", "add", `198.51.100.${128 + n * 4}/30`, "via", "198.51.100.254", "dev", name);
  ip("route", "add", "198.18.128.0/25", "dev", name, "table", String(1000 + n));
  ip("-6", "route", "add", `fd00:${n.toString(16)}:1::/64`, "via", `fd00:${n.toString(16)}::1`, "dev", name);
}

type Json = Record<string, unknown>;

/** Everything the host knows about `name`: link, addresses, routes in every table (both families). */
export function hostSnapshot(name: string): Json {
  const link = JSON.parse(ip("-json", "-details", "link", "show", "dev", name)) as Json[];
  const addrs = JSON.parse(ip("-json", "addr", "show", "dev", name)) as Json[];
  const routes4 = JSON.parse(ip("-json", "-4", "route", "show", "table", "all", "dev", name)) as Json[];
  const routes6 = JSON.parse(ip("-json", "-6", "route", "show", "table", "all", "dev", name)) as Json[];
  return normalise({ link, addrs, routes4, routes6 });
}

/**
 * Drops what legitimately differs between two looks at the same state:
 * counters, DAD progress of the kernel's link-local address, bridge timers.
 */
function normalise(value: unknown): Json {
  return JSON.parse(
    JSON.stringify(value, (key, v: unknown) =>
      ["tentative", "stats64", "stats", "hello_timer", "tcn_timer", "topology_change_timer", "gc_timer", "operstate"].includes(key)
        ? undefined
        : v,
    ),
  ) as Json;
}

export function podHas(netns: Netns, args: string[], needle: string): boolean {
  return ip("-n", netns.name, ...args).includes(needle);
}

export async function tempStoreDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "nc-engine-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
