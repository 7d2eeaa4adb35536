/**
 * The whole network state of the namespace the test runs in, as text to
 * compare before and after: every link, address, route (all tables) and
 * rule of both families in `ip -d -j` form, every readable sysctl under
 * /proc/sys/net, and the nftables and iptables rulesets where those tools
 * exist. Only what changes by itself is left out: packet counters and the
 * timestamp comments of iptables-save.
 *
 * The real host's namespace is not quiet enough to compare byte for byte
 * (the test node's kubelet and runtime, conntrack counts, other suites), so
 * a test first moves its process into a namespace of its own that plays the
 * host (isolateHostNetwork): what the code under test does to "the host"
 * shows up there, and nothing else does.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { lastErrno, libc } from "../../src/common/libc.ts";

const CLONE_NEWNET = 0x40000000;
const unshare = libc.func("int unshare(int flags)") as (flags: number) => number;

/**
 * Moves this test process (its main thread, and every process and thread it
 * starts from now on) into a new network namespace furnished like a small
 * host: lo up, a veth pair with addresses and a route, a sysctl set. Call
 * it first thing in a test file: node's test runner gives each file a
 * process of its own, so the real host is left alone.
 */
export function isolateHostNetwork(): void {
  if (unshare(CLONE_NEWNET) !== 0) throw new Error(`unshare(CLONE_NEWNET) failed with errno ${lastErrno()}`);
  const ip = (...args: string[]): void => {
    execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
  };
  ip("link", "set", "lo", "up");
  ip("link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1");
  // No IPv6 link-local addresses: they appear (and their routes with them) some time after the
  // link goes up, and the "host" must be still before a test starts.
  for (const link of ["uplink0", "uplink1"]) ip("link", "set", link, "addrgenmode", "none");
  ip("addr", "add", "198.51.100.1/24", "dev", "uplink0");
  ip("-6", "addr", "add", "fd00:198:51::1/64", "dev", "uplink0", "nodad");
  ip("link", "set", "uplink0", "up");
  ip("link", "set", "uplink1", "up");
  ip("route", "add", "198.18.0.0/15", "via", "198.51.100.2");
  writeFileSync("/proc/sys/net/ipv4/conf/uplink0/arp_ignore", "1");
}

function run(command: string, args: readonly string[]): string | undefined {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined; // the tool is not installed
    throw err;
  }
}

function sysctls(dir: string, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      sysctls(path, out);
      continue;
    }
    try {
      out.push(`${path}=${readFileSync(path, "utf8")}`);
    } catch {
      // Write-only entries (route/flush) and ones that refuse reads.
    }
  }
}

export interface HostState {
  [part: string]: string;
}

export function hostState(): HostState {
  const state: HostState = {};
  const ip = (...args: string[]): string => run("ip", args) ?? "";
  for (const family of ["-4", "-6"]) {
    state[`addr${family}`] = ip(family, "-d", "-j", "addr", "show");
    state[`route${family}`] = ip(family, "-d", "-j", "route", "show", "table", "all");
    state[`rule${family}`] = ip(family, "-d", "-j", "rule", "show");
  }
  state["link"] = ip("-d", "-j", "link", "show");
  const values: string[] = [];
  sysctls("/proc/sys/net", values);
  state["sysctl"] = values.join("");
  const nft = run("nft", ["list", "ruleset"]);
  if (nft !== undefined) state["nft"] = nft.replace(/counter packets \d+ bytes \d+/g, "counter");
  for (const save of ["iptables-save", "ip6tables-save"]) {
    const rules = run(save, []);
    if (rules !== undefined) state[save] = rules.replace(/^#.*\n/gm, "").replace(/\[\d+:\d+\]/g, "[counters]");
  }
  return state;
}

/** The parts of `after` that differ from `before`, for a readable failure. */
export function changedParts(before: HostState, after: HostState): string[] {
  return [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((part) => before[part] !== after[part]);
}
