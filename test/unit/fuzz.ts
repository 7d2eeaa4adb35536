/**
 * Seeded random inputs for the fuzz tests of what tenants write
 * (NetworkAttachmentDefinition configs, NetworkConfig parameters). A run
 * prints its seed; NETCLAIM_FUZZ_SEED=<seed> replays it exactly.
 */
import { randomInt } from "node:crypto";

export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** mulberry32: tiny and fast, and spreads test inputs well enough. */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(below: number): number {
    return Math.floor(this.next() * below);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new RangeError("Cannot pick from an empty list");
    return item;
  }
}

export function fuzzSeed(): number {
  const fromEnv = process.env["NETCLAIM_FUZZ_SEED"];
  return fromEnv === undefined || fromEnv === "" ? randomInt(2 ** 32) : Number(fromEnv) >>> 0;
}

/** Keys that would pollute prototypes if a parser assigned them instead of defining them. */
export const PROTOTYPE_KEYS = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty"] as const;

export const PATHS = [
  "/etc/passwd", "/etc/cron.d", "/root/.kube/config", "/tmp/whereabouts.log", "/proc/self/ns/net", "/", "//etc//shadow",
  "/var/lib/cni/networks", "/var/lib/cni", "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig",
  "/etc/kubernetes/cni/net.d/whereabouts.d/whereabouts.conf", "/run/cni/dhcp.sock", "/var/run/cni/x",
  "/var/lib/cni/../../../etc", "/var/lib/cni-other/x", "../../etc/shadow", "a/../../b", "..", "./networks", "networks",
] as const;

const ODD_STRINGS = [
  "", " ", "\u0000", "\u0000/etc", "/etc\u0000", "\u001b[31mred", "\u2028", "\ud800", "\u202e/etc/passwd", "e\u0301", "🦀/🦀", "ℝ",
  "null", "true", "0", "-1", "NaN", "198.51.100.0/24", "198.51.100.300/24", "fd00::/64", "fd00::1", "0.0.0.0/0", "::/0",
  "host-local", "whereabouts", "static", "bridge", "tuning", "portmap", "dhcp", "../../bin/sh", "HOST-LOCAL",
  ...PROTOTYPE_KEYS,
] as const;

const ALPHABET = ["a", "z", "0", "-", ".", "/", "_", ":", " ", "\n", "\t", "\u0000", "\u007f", "\u00e9", "\u4e2d", "\ud83e\udd80", "\\", '"', "'", "$", "{", "}"];

export function randomString(rng: Rng): string {
  // Huge: up to 200 KB, sometimes a path that starts inside an allowed prefix. Rare, or they would be all the run does.
  if (rng.chance(0.01)) return (rng.chance(0.5) ? "/var/lib/cni/" : "") + rng.pick(["x", "/..", "é", "\u0000"]).repeat(rng.int(200_000));
  switch (rng.int(5)) {
    case 0:
      return rng.pick(PATHS);
    case 1:
      return rng.pick(ODD_STRINGS);
    case 2:
      return shortString(rng);
    case 3:
      return `${rng.pick(PATHS)}${rng.pick(["", "/", "/..", "/x"])}`;
    default:
      return randomString(rng) + randomString(rng);
  }
}

function shortString(rng: Rng): string {
  return Array.from({ length: rng.int(40) }, () => rng.pick(ALPHABET)).join("");
}

export function randomKey(rng: Rng): string {
  return rng.chance(0.2) ? rng.pick(PROTOTYPE_KEYS) : rng.chance(0.5) ? rng.pick(["a", "type", "dataDir", "x.y", "0", ""]) : rng.chance(0.5) ? rng.pick(ODD_STRINGS) : shortString(rng);
}

/** Any JSON value: scalars, arrays, objects with own (never inherited) odd keys, and now and then a deep nest. */
export function randomJson(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 3 ? 4 : 8)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 1, 1.5, 2 ** 53, 1e308, -0, 255, 1500, 65536]);
    case 3:
      return randomString(rng);
    case 4:
      return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth + 1));
    case 5:
      return rng.chance(0.2) ? deeplyNested(rng, 1 + rng.int(1500)) : randomJson(rng, depth + 1);
    default:
      return randomObject(rng, depth);
  }
}

export function randomObject(rng: Rng, depth = 0): Record<string, unknown> {
  // fromEntries defines own properties, as JSON.parse does, so "__proto__" stays a plain key.
  return Object.fromEntries(Array.from({ length: rng.int(5) }, () => [randomKey(rng), randomJson(rng, depth + 1)]));
}

/** Arrays and objects nested `depth` levels around a string. */
export function deeplyNested(rng: Rng, depth: number): unknown {
  let value: unknown = randomString(rng).slice(0, 20);
  for (let i = 0; i < depth; i++) value = rng.chance(0.5) ? [value] : { [randomKey(rng)]: value };
  return value;
}

/** The same nest as text, deeper than JSON.stringify can go (JSON.parse can). */
export function deeplyNestedText(depth: number): string {
  return `${"[".repeat(depth)}"/etc"${"]".repeat(depth)}`;
}

/** Fails the caller when Object.prototype gained or lost a property since the snapshot. */
export function prototypeSnapshot(): () => string[] {
  const before = new Set(Object.getOwnPropertyNames(Object.prototype));
  return () => {
    const after = Object.getOwnPropertyNames(Object.prototype);
    return [...after.filter((name) => !before.has(name)), ...[...before].filter((name) => !after.includes(name))];
  };
}

/** Collects unhandled rejections while a fuzz run lasts. */
export function watchUnhandledRejections(): { stop(): unknown[] } {
  const seen: unknown[] = [];
  const listener = (reason: unknown): void => {
    seen.push(reason);
  };
  process.on("unhandledRejection", listener);
  return {
    stop() {
      process.off("unhandledRejection", listener);
      return seen;
    },
  };
}

/** The start of a value's JSON for a failure message, whatever its depth. */
export function preview(value: unknown): string {
  if (value === undefined) return "undefined";
  try {
    return JSON.stringify(value).slice(0, 500);
  } catch {
    return "(nested too deeply to print)";
  }
}
