// 10,000 random NetworkAttachmentDefinition configs through the NAD → IPAM
// config path (parse, allowlist, host path rule), and the refused ones
// through the real NetworkPreparer. NETCLAIM_FUZZ_SEED=<seed> replays a run.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { pino } from "pino";
import { CniError, IpamRunner, MAX_IPAM_CONFIG_DEPTH, type IpamConfig, type IpamPolicy } from "../../src/cni/index.ts";
import { ClaimPrepareError } from "../../src/claims/errors.ts";
import { NetworkPreparer, type ClaimForPrepare } from "../../src/claims/preparer.ts";
import { StateStore } from "../../src/store/index.ts";
import { deeplyNestedText, fuzzSeed, PATHS, PROTOTYPE_KEYS, prototypeSnapshot, randomJson, randomObject, randomString, Rng, watchUnhandledRejections } from "./fuzz.ts";

const CASES = 10_000;
const DRIVER = "netclaim.dev";
const POLICY: IpamPolicy = {
  allowedTypes: ["host-local", "whereabouts", "static"],
  allowedPathPrefixes: ["/var/lib/cni/networks/", "/etc/cni/net.d/whereabouts.d/", "/etc/kubernetes/cni/net.d/whereabouts.d/"],
  allowCrossNamespace: false,
};
const TYPES = ["host-local", "whereabouts", "static", "bridge", "tuning", "portmap", "firewall", "dhcp", "macvlan", "", "bin/sh", "../x"] as const;
const IPAM_FIELDS = ["dataDir", "resolvConf", "log_file", "configuration_path", "daemonSocketPath", "range", "subnet", "routes", "ranges", "kubernetes", ...PROTOTYPE_KEYS] as const;
const SAFE_VALUES = ["198.51.100.0/24", "fd00::/64", "/var/lib/cni/networks", "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig", "/run/cni/x", "networks", 7, true, null] as const;

function ipamSection(rng: Rng): Record<string, unknown> {
  const fields = Array.from({ length: rng.int(4) }, (): [string, unknown] => {
    const key = rng.pick(IPAM_FIELDS);
    const value = rng.chance(0.5) ? rng.pick(SAFE_VALUES) : key === "kubernetes" ? { kubeconfig: randomString(rng) } : rng.chance(0.5) ? randomString(rng) : randomJson(rng);
    return [key, value];
  });
  const type = rng.chance(0.9) ? rng.pick(TYPES) : randomJson(rng);
  return Object.fromEntries<unknown>([["type", type], ...fields]);
}

function pluginConf(rng: Rng, withIpam: boolean): Record<string, unknown> {
  const ipam: [string, unknown][] = withIpam ? [["ipam", ipamSection(rng)]] : [];
  const extra = rng.chance(0.2) ? Object.entries(randomObject(rng)) : [];
  return Object.fromEntries<unknown>([["type", rng.pick(["macvlan", "sriov", "bridge"])], ...ipam, ...extra]);
}

function nadText(rng: Rng): string {
  const roll = rng.int(20);
  if (roll === 0) return randomString(rng);
  if (roll === 1) return JSON.stringify(randomJson(rng));
  if (roll === 2) return `{"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local","ranges":${deeplyNestedText(1 + rng.int(10_000))}}}`;
  const odd: [string, unknown][] = rng.chance(0.1) ? [[rng.pick(["kubeconfig", "logFile", ...PROTOTYPE_KEYS]), rng.chance(0.5) ? rng.pick(PATHS) : randomJson(rng)]] : [];
  const head = Object.fromEntries<unknown>([
    ["cniVersion", rng.chance(0.95) ? "1.0.0" : randomJson(rng)],
    ["name", rng.chance(0.95) ? rng.pick(["pool", "a/b", "..", randomString(rng)]) : randomJson(rng)],
    ...odd,
  ]);
  const conf = rng.chance(0.3)
    ? { ...head, plugins: Array.from({ length: 1 + rng.int(3) }, () => pluginConf(rng, rng.chance(0.6))) }
    : { ...head, ...pluginConf(rng, rng.chance(0.95)) };
  const text = JSON.stringify(conf);
  // Now and then cut short, as a truncated write would leave it.
  return rng.chance(0.03) ? text.slice(0, rng.int(text.length)) : text;
}

/** What fromNad accepted must satisfy the policy, checked here without the code under test. */
function policyViolation(accepted: IpamConfig): string | undefined {
  if (!POLICY.allowedTypes.includes(accepted.plugin)) return `type ${accepted.plugin} is not allowed`;
  const stack: { value: unknown; depth: number }[] = [{ value: accepted.config, depth: 0 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop() ?? { value: null, depth: 0 };
    if (typeof value === "string") {
      if (value.split("/").includes("..")) return `"${value.slice(0, 80)}" has a ".." segment`;
      const normal = posix.normalize(value);
      if (value.startsWith("/") && !POLICY.allowedPathPrefixes.some((p) => normal.startsWith(p) || `${normal}/` === p)) return `"${value.slice(0, 80)}" is outside the prefixes`;
    } else if (typeof value === "object" && value !== null) {
      if (depth > MAX_IPAM_CONFIG_DEPTH) return "nested too deep";
      for (const item of Object.values(value)) stack.push({ value: item, depth: depth + 1 });
    }
  }
  JSON.stringify(accepted.config);
  return undefined;
}

describe("NetworkAttachmentDefinition configs from tenants (fuzz)", () => {
  it(`${CASES} random configs: accepted within the policy, or refused with a CniError naming the NAD`, async (t) => {
    const seed = fuzzSeed();
    t.diagnostic(`seed ${seed} (replay: NETCLAIM_FUZZ_SEED=${seed})`);
    const rng = new Rng(seed);
    const runner = new IpamRunner({ pluginDirs: ["/nonexistent"], sandbox: { netns: "/nonexistent", workDir: "/nonexistent" }, policy: POLICY, timeoutMs: 1_000 });
    let current = "";
    const store = await StateStore.open(await mkdtemp(join(tmpdir(), "netclaim-fuzz-")));
    const preparer = new NetworkPreparer({
      driverName: DRIVER,
      poolName: "worker-1",
      devices: { find: () => ({ ifName: "ens3f1", ifIndex: 8 }) },
      nads: { config: () => Promise.resolve(current) },
      cdi: { write: () => Promise.resolve(new Map()), remove: () => Promise.resolve() },
      store,
      ipam: runner,
      runtimeConnected: () => true,
      logger: pino({ level: "silent" }),
    });
    const prototypeChanges = prototypeSnapshot();
    const rejections = watchUnhandledRejections();
    const outcomes = new Map<string, number>();
    for (let i = 0; i < CASES; i++) {
      const where = `seed ${seed}, case ${i}`;
      const nadRef = `fuzz/nad-${i}`;
      current = nadText(rng);
      let accepted: IpamConfig | undefined;
      try {
        accepted = runner.fromNad(current, nadRef);
      } catch (err) {
        assert.ok(err instanceof CniError, `${where}: threw ${String(err)}`);
        assert.ok(err.code === "CNI_CONFIG" || err.code === "CNI_NOT_ALLOWED", `${where}: code ${err.code}`);
        assert.ok(err.message.startsWith(`Cannot use NetworkAttachmentDefinition ${nadRef}`), `${where}: ${err.message.slice(0, 300)}`);
        assert.ok(err.message.length < 2_000, `${where}: a ${err.message.length}-character message: ${err.message.slice(0, 300)}`);
        outcomes.set(err.code, (outcomes.get(err.code) ?? 0) + 1);
        await refusedByPrepare(preparer, i, nadRef, where);
      }
      if (accepted !== undefined) {
        assert.equal(policyViolation(accepted), undefined, `${where}: accepted ${current.slice(0, 300)}`);
        outcomes.set("accepted", (outcomes.get("accepted") ?? 0) + 1);
      }
    }
    assert.deepEqual(prototypeChanges(), []);
    assert.deepEqual(rejections.stop(), []);
    t.diagnostic(JSON.stringify(Object.fromEntries(outcomes)));
    // A fuzz run that never reaches one of the outcomes proves nothing about it.
    for (const outcome of ["accepted", "CNI_CONFIG", "CNI_NOT_ALLOWED"]) assert.ok((outcomes.get(outcome) ?? 0) > CASES / 50, `${outcome}: ${outcomes.get(outcome) ?? 0}`);
  });
});

/** The same NAD through prepare: a ClaimPrepareError naming claim, device and NAD, and nothing recorded. */
async function refusedByPrepare(preparer: NetworkPreparer, i: number, nadRef: string, where: string): Promise<void> {
  const claim: ClaimForPrepare = {
    ref: { namespace: "fuzz", name: `claim-${i}`, uid: `uid-${i}` },
    results: [{ request: "nic", driver: DRIVER, pool: "worker-1", device: "pci-0000-03-00-1" }],
    config: [{ source: "FromClaim", requests: [], driver: DRIVER, parameters: { apiVersion: "netclaim.dev/v1alpha1", kind: "NetworkConfig", ipamFrom: { name: `nad-${i}` } } }],
    reservedFor: [{ resource: "pods", apiGroup: "", name: "pod", uid: "pod-uid" }],
  };
  let intents = 0;
  await assert.rejects(
    preparer.prepare(claim, AbortSignal.timeout(5_000), () => {
      intents++;
      return Promise.resolve();
    }),
    (err: unknown) => {
      assert.ok(err instanceof ClaimPrepareError, `${where}: prepare threw ${String(err)}`);
      assert.ok(err.code === "IPAM_NOT_ALLOWED" || err.code === "IPAM_FAILED", `${where}: ${err.code}`);
      assert.ok(err.message.startsWith(`claim fuzz/claim-${i}: ipamFrom of device pci-0000-03-00-1 (request nic): Cannot use NetworkAttachmentDefinition ${nadRef}`), `${where}: ${err.message.slice(0, 300)}`);
      return true;
    },
  );
  assert.equal(intents, 0, `${where}: an intent was recorded for a refused NAD`);
}
