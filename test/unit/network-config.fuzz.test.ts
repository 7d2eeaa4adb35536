// 10,000 random NetworkConfig parameter sets through parse and resolve, and
// through the real NetworkPreparer. NETCLAIM_FUZZ_SEED=<seed> replays a run.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { IpamRunner } from "../../src/cni/index.ts";
import { resolveRequestConfig, type OpaqueConfigEntry, type ResolvedNetworkConfig } from "../../src/claims/config-merge.ts";
import { ClaimPrepareError } from "../../src/claims/errors.ts";
import { MAX_ADDRESSES, MAX_PARAMETERS_BYTES } from "../../src/claims/network-config.ts";
import { NetworkPreparer, type ClaimForPrepare } from "../../src/claims/preparer.ts";
import { parseCidr } from "../../src/common/ip.ts";
import { StateStore } from "../../src/store/index.ts";
import { deeplyNested, fuzzSeed, preview, PROTOTYPE_KEYS, prototypeSnapshot, randomJson, randomObject, randomString, Rng, watchUnhandledRejections } from "./fuzz.ts";

const CASES = 10_000;
const DRIVER = "netclaim.dev";
const HEAD = { apiVersion: "netclaim.dev/v1alpha1", kind: "NetworkConfig" };
const CIDRS = ["198.51.100.7/24", "198.51.100.8/24", "fd00::7/64", "198.51.100.7/33", "198.51.100.0/24", "::/0", "0.0.0.0/0", "fd00::/8", "198.18.0.1/15"];
const IPS = ["198.51.100.1", "fd00::1", "198.18.0.1", "203.0.113.1", "::", "1.2.3"];

/** Mostly near-valid values, so the fuzz reaches the merge and the cross-document rules, not just the first type check. */
function value(rng: Rng, good: readonly unknown[]): unknown {
  return rng.chance(0.9) ? rng.pick(good) : rng.chance(0.5) ? randomString(rng) : randomJson(rng);
}

function maybe(rng: Rng, entries: [string, () => unknown][]): Record<string, unknown> {
  return Object.fromEntries(entries.filter(() => rng.chance(0.4)).map(([key, make]) => [key, make()]));
}

function route(rng: Rng): unknown {
  return maybe(rng, [
    ["destination", () => value(rng, CIDRS)],
    ["gateway", () => value(rng, IPS)],
    ["source", () => value(rng, IPS)],
    ["table", () => value(rng, [100, 254, 255, 0])],
    ["scope", () => value(rng, ["universe", "link", "host"])],
    ["metric", () => value(rng, [0, 100, -1])],
  ]);
}

function parameters(rng: Rng): unknown {
  if (rng.chance(0.05)) return randomJson(rng);
  // Past the depth at which recursive code (JSON.stringify, zod) runs out of stack.
  if (rng.chance(0.01)) return { ...HEAD, interface: deeplyNested(rng, 5_000 + rng.int(15_000)) };
  const doc = {
    ...(rng.chance(0.95) ? HEAD : maybe(rng, [["apiVersion", () => randomJson(rng)], ["kind", () => randomJson(rng)]])),
    ...maybe(rng, [
      ["mode", () => value(rng, ["native", "multus"])],
      [
        "interface",
        () =>
          maybe(rng, [
            ["name", () => value(rng, ["nc0", "data0", "eth0", ".", "..", "a".repeat(16), "a/b"])],
            ["mtu", () => value(rng, [68, 1000, 1280, 1500, 9000, 67, 65536, 1.5])],
            ["hardwareAddress", () => value(rng, ["02:00:5e:10:00:01", "01:00:5e:10:00:01", "00:00:00:00:00:00", "02:00:5E:10:00:0A"])],
            ["addresses", () => Array.from({ length: rng.int(MAX_ADDRESSES + 3) }, () => value(rng, CIDRS))],
            ["sysctls", () => Object.fromEntries(Array.from({ length: rng.int(4) }, () => [rng.chance(0.85) ? rng.pick(["ipv4.arp_ignore", "ipv6.accept_ra", "ipv4.conf/all", ...PROTOTYPE_KEYS]) : randomString(rng), value(rng, ["0", "1", "a;b"])]))],
          ]),
      ],
      ["routes", () => Array.from({ length: rng.int(4) }, () => route(rng))],
      [
        "ipamFrom",
        () =>
          Object.fromEntries<unknown>([
            ...(rng.chance(0.3) ? [["namespace", value(rng, ["default", "tenant", "Default"])] as const] : []),
            ...(rng.chance(0.9) ? [["name", value(rng, ["pool", "a.b", "-x"])] as const] : []),
          ]),
      ],
    ]),
  };
  return rng.chance(0.1) ? { ...doc, ...randomObject(rng) } : doc;
}

function entries(rng: Rng): OpaqueConfigEntry[] {
  return Array.from({ length: 1 + rng.int(3) }, () => ({
    source: rng.chance(0.3) ? "FromClass" : "FromClaim",
    requests: rng.chance(0.6) ? [] : [rng.pick(["nic", "nic/a", "other"])],
    driver: rng.chance(0.95) ? DRIVER : "gpu.example.com",
    parameters: parameters(rng),
  }));
}

/** What resolve accepted must be a config the engine can apply, checked here without the code under test. */
function invalidity(config: ResolvedNetworkConfig): string | undefined {
  const { interface: iface } = config;
  if (!["native", "multus"].includes(config.mode)) return "mode";
  if (iface.name !== undefined && (!/^[A-Za-z0-9_.-]{1,15}$/.test(iface.name) || iface.name === "." || iface.name === "..")) return "interface.name";
  if (iface.mtu !== undefined && !(Number.isInteger(iface.mtu) && iface.mtu >= 68 && iface.mtu <= 65535)) return "interface.mtu";
  if (iface.addresses.length > MAX_ADDRESSES || iface.addresses.some((a) => parseCidr(a) === undefined)) return "interface.addresses";
  if (config.ipamFrom !== undefined && iface.addresses.length > 0) return "ipamFrom with addresses";
  if (config.ipamFrom !== undefined && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(config.ipamFrom.name)) return "ipamFrom.name";
  if (Object.keys(iface.sysctls).some((key) => !/^ipv[46]\.[a-z0-9_]{1,48}$/.test(key))) return "interface.sysctls";
  if (config.routes.some((r) => parseCidr(r.destination) === undefined || r.table === 255)) return "routes";
  if (Buffer.byteLength(JSON.stringify(config)) > 4 * MAX_PARAMETERS_BYTES) return "size";
  return undefined;
}

describe("NetworkConfig parameters from tenants (fuzz)", () => {
  it(`${CASES} random parameter sets: resolved to an applicable config, or refused naming the field`, async (t) => {
    const seed = fuzzSeed();
    t.diagnostic(`seed ${seed} (replay: NETCLAIM_FUZZ_SEED=${seed})`);
    const rng = new Rng(seed);
    const store = await StateStore.open(await mkdtemp(join(tmpdir(), "netclaim-fuzz-")));
    const bridgeNad = JSON.stringify({ cniVersion: "1.0.0", name: "pool", type: "macvlan", ipam: { type: "bridge" } });
    const preparer = new NetworkPreparer({
      driverName: DRIVER,
      poolName: "worker-1",
      devices: { find: () => ({ ifName: "ens3f1", ifIndex: 8 }) },
      // Every NAD is refused by the policy, so no fuzz case journals a lease or runs a plugin.
      nads: { config: () => Promise.resolve(bridgeNad) },
      cdi: { write: () => Promise.resolve(new Map()), remove: () => Promise.resolve() },
      store,
      ipam: new IpamRunner({ pluginDirs: ["/nonexistent"], sandbox: { netns: "/nonexistent", workDir: "/nonexistent" }, policy: { allowedTypes: ["host-local"], allowedPathPrefixes: [], allowCrossNamespace: false }, timeoutMs: 1_000 }),
      runtimeConnected: () => true,
      logger: pino({ level: "silent" }),
    });
    const prototypeChanges = prototypeSnapshot();
    const rejections = watchUnhandledRejections();
    const outcomes = new Map<string, number>();
    const count = (outcome: string): void => {
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    };
    for (let i = 0; i < CASES; i++) {
      const where = `seed ${seed}, case ${i}`;
      const config = entries(rng);
      const request = rng.pick(["nic", "nic/a"]);
      const resolved = resolveRequestConfig(config, { driverName: DRIVER, request });
      const claim: ClaimForPrepare = {
        ref: { namespace: "tenant", name: `claim-${i}`, uid: `uid-${i}` },
        results: [{ request, driver: DRIVER, pool: "worker-1", device: "pci-0000-03-00-1" }],
        config,
        reservedFor: [{ resource: "pods", apiGroup: "", name: "pod", uid: "pod-uid" }],
      };
      const prepared = await preparer.prepare(claim, AbortSignal.timeout(5_000)).then(
        (plan) => ({ plan }),
        (err: unknown) => ({ err }),
      );
      if (!resolved.ok) {
        assert.ok(resolved.problems.length > 0, where);
        for (const problem of resolved.problems) {
          assert.match(problem.field, /^(DeviceClass config|spec\.devices\.config)\[\d+\]\.opaque\.parameters/, `${where}: ${JSON.stringify(problem).slice(0, 300)}`);
          assert.ok(typeof problem.message === "string" && problem.message.length > 0, where);
        }
        assert.ok("err" in prepared && prepared.err instanceof ClaimPrepareError, `${where}: prepare gave ${String("err" in prepared ? prepared.err : "a plan")}`);
        assert.equal(prepared.err.code, "CLAIM_INVALID_CONFIG", where);
        assert.ok(prepared.err.message.includes(resolved.problems[0]?.field ?? "?"), `${where}: ${prepared.err.message.slice(0, 300)}`);
        count("refused");
        continue;
      }
      assert.equal(invalidity(resolved.config), undefined, `${where}: accepted ${preview(config)}`);
      if ("plan" in prepared) {
        assert.equal(resolved.config.ipamFrom, undefined, `${where}: a plan from a refused NAD`);
        count(resolved.config.mode);
      } else {
        // Accepted config, but the device cannot go to Multus, or its NAD is refused by the policy.
        assert.ok(prepared.err instanceof ClaimPrepareError, `${where}: prepare threw ${String(prepared.err)}`);
        assert.match(prepared.err.message, /^claim tenant\/claim-\d+: .*device pci-0000-03-00-1 \(request nic(\/a)?\)/, where);
        count(prepared.err.code);
      }
    }
    assert.deepEqual(prototypeChanges(), []);
    assert.deepEqual(rejections.stop(), []);
    assert.deepEqual(await store.collection("ipam-leases", (await import("zod")).z.unknown()).list(), [], "no lease journaled");
    t.diagnostic(JSON.stringify(Object.fromEntries(outcomes)));
    for (const outcome of ["refused", "native", "IPAM_NOT_ALLOWED"]) assert.ok((outcomes.get(outcome) ?? 0) > CASES / 100, `${outcome}: ${outcomes.get(outcome) ?? 0}`);
  });
});
