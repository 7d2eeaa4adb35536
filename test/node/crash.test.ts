// kill -9 of the agent at random points of prepare, attach, detach and
// unprepare, many times over: after every restart each device is either fully
// in its pod with its configuration or fully back on the host as it was, the
// IPAM leases and CDI specs on disk are exactly those of a prepared claim (or
// journaled, so that unprepare finds them), and finishing the pod's life cycle
// leaves nothing behind.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { nodeSlices, waitFor } from "../api/harness.ts";
import { connectxNode } from "../fixtures/nodes.ts";
import { parseClaimPlan, type ClaimPlan } from "../../src/claims/plan.ts";
import { ClaimState } from "../../src/dra/claim-state.ts";
import type { ClaimRef } from "../../src/dra/index.ts";
import { FileLock, StateStore, type Collection } from "../../src/store/index.ts";
import { DRIVER, links, SimNode, type LinkInfo, type Sandbox } from "./harness.ts";
import { deviceClass, pod, requestsTemplate, scheduledClaim } from "./objects.ts";

const NODE = "nc-sim-4";
const NS = "default";
/** Crash points in this suite; each costs an agent restart (about a second). */
const ITERATIONS = Number(process.env["NETCLAIM_CRASH_ITERATIONS"] ?? 100);
/** Fewer crashes than this say nothing about any one phase: an unset or mistyped count must not pass as a crash test. */
const MIN_ITERATIONS = 30;
const NICS = ["ncsc0", "ncsc1"];
/** The host-local network the claim's addresses come from (the NAD's name and host-local's pool directory). */
const POOL = "sim-crash-pool";
const HOST_LOCAL = "/usr/lib/cni/host-local";

type Step = "prepare" | "attach" | "detach" | "unprepare";

/**
 * Where kills are aimed, in turn. A step alone: a random moment of it, within
 * the time it took in undisturbed cycles. With a plugin command: while
 * host-local runs it for the claim, which takes a few milliseconds, so a
 * random moment would rarely find it.
 */
const TARGETS: readonly { step: Step; plugin?: "ADD" | "DEL" }[] = [
  { step: "prepare" },
  { step: "prepare", plugin: "ADD" },
  { step: "attach" },
  { step: "detach" },
  { step: "unprepare" },
  { step: "unprepare", plugin: "DEL" },
];
/** Half of an even share: the kills aimed at a step land in the next one when it ends early. */
const MIN_PER_PHASE = Math.floor(ITERATIONS / TARGETS.length / 2);

function phaseName(step: string, plugin: string | undefined): string {
  return plugin === undefined ? step : `${step} (host-local ${plugin})`;
}

describe("node simulator: kill -9 at random points", { timeout: 1_800_000 }, () => {
  let node: SimNode;
  let sysfs: string;

  before(async () => {
    sysfs = await mkdtemp("/tmp/nc-sim-sysfs-");
    node = await SimNode.create(NODE, { nicPrefix: "ncsc", inventoryRoot: sysfs });
    for (const nic of NICS) await node.addNic(nic);
    await node.addNic("ncsm4");
    // A ConnectX port with an RDMA device, named into the published prefix: its claim gets a CDI spec.
    const port = connectxNode().pci.find((fn) => fn.address === "0000:3b:00.1");
    assert.ok(port?.rdma !== undefined, "the fixture has an RDMA port at 0000:3b:00.1");
    await node.writeInventoryFixture([{ ...port, netdevs: port.netdevs.map((n) => ({ ...n, name: "ncscr0" })) }]);
    await node.startAgent();
    await node.apply(deviceClass());
    await node.apply(await readFile(new URL("../../hack/node/nad-crd.yaml", import.meta.url), "utf8"));
  });

  after(async () => {
    await node.cleanup();
    await rm(sysfs, { recursive: true, force: true });
  });

  // Each crash costs about 3 s here (kill, restart, registration, checks, teardown): the
  // suite-wide per-test timeout is too short for 100 of them.
  it(`converges after ${ITERATIONS} crashes`, { timeout: 60_000 + ITERATIONS * 6_000 }, async () => {
    assert.ok(ITERATIONS >= MIN_ITERATIONS, `NETCLAIM_CRASH_ITERATIONS is ${process.env["NETCLAIM_CRASH_ITERATIONS"] ?? ""}: at least ${MIN_ITERATIONS} crashes are needed to hit every phase`);
    const poolDir = join(node.dir, "ipam", POOL);
    // host-local's pool directory, made here so the test can hold its lock before the plugin ever ran.
    await mkdir(poolDir, { recursive: true });
    const poolLock = join(poolDir, "lock");
    await node.apply(`
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: { name: ${POOL}, namespace: ${NS} }
spec:
  config: '${JSON.stringify({
    cniVersion: "1.0.0",
    name: POOL,
    type: "macvlan",
    master: "ncsm4",
    ipam: {
      type: "host-local",
      dataDir: join(node.dir, "ipam"),
      // Small ranges: a leaked lease would soon exhaust them and fail a prepare.
      ranges: [[{ subnet: "198.51.100.0/24", rangeStart: "198.51.100.40", rangeEnd: "198.51.100.47" }], [{ subnet: "fd00:40::/64", rangeStart: "fd00:40::40", rangeEnd: "fd00:40::47" }]],
    },
  })}'
`);
    await node.apply(
      requestsTemplate(NS, "sim-crash", [
        {
          name: "data",
          cel: 'device.attributes["netclaim.dev"].virtual',
          config: { interface: { name: "data0", mtu: 1450 }, ipamFrom: { name: POOL }, routes: [{ destination: "198.19.0.0/24", gateway: "198.51.100.1" }] },
        },
        { name: "spare", cel: 'device.attributes["netclaim.dev"].virtual' },
        // Left to Multus, so never moved: the fixture's port is not in this kernel.
        { name: "rdma", cel: 'device.attributes["netclaim.dev"].rdma', config: { mode: "multus" } },
      ]),
    );
    await node.deletePod(NS, "sim-pod-crash");
    await node.apply(pod(NS, NODE, "sim-pod-crash", "sim-crash"));
    const { pod: podObject, claim } = await scheduledClaim(node, NS, NODE, "sim-pod-crash");
    const ref = { namespace: NS, name: claim.metadata.name, uid: claim.metadata.uid };
    const store = await StateStore.open(join(node.dir, "state"));
    const disk = { claims: new ClaimState(store, DRIVER), leases: store.collection("ipam-leases", z.looseObject({ containerId: z.string() })), cdi: join(node.dir, "cdi"), poolDir };
    const hostBefore = hostView(await links());
    const seed = Number(process.env["NETCLAIM_CRASH_SEED"] ?? Date.now() % 100_000);
    let random = seed;
    const next = (): number => {
      random = (random * 48271) % 2147483647;
      return random / 2147483647;
    };
    const phases = new Map<string, number>();
    const cycleSteps = async (sandbox: Sandbox, onStep: (step: Step | "done") => Promise<void>): Promise<void> => {
      await onStep("prepare");
      await node.kubelet.prepare(DRIVER, [ref]);
      await onStep("attach");
      await node.startPod(sandbox);
      await node.runtime.command("addRunningPod", { pod: sandbox });
      await onStep("detach");
      await node.runtime.command("stopPod", { pod: sandbox });
      await onStep("unprepare");
      await node.kubelet.unprepare(DRIVER, [ref]);
      await onStep("done");
    };
    // Undisturbed cycles tell how long each step takes here, so kills spread over all of it.
    // The shortest of them, so that a kill aimed at a step lands in it even when the warm-up
    // ran slower than the crashes do (unprepare's fsyncs vary with the machine's other I/O).
    const samples = new Map<string, number[]>();
    for (let w = 0; w < 3; w++) {
      const warmNetns = await node.podNetns("ncsm4", "198.51.100.99/24");
      const marks: [string, number][] = [];
      await cycleSteps({ id: `sb-warm-${w}`, uid: podObject.metadata.uid, name: "sim-pod-crash", namespace: NS, netns: `/var/run/netns/${warmNetns}` }, (step) => {
        marks.push([step, performance.now()]);
        return Promise.resolve();
      });
      for (const [k, [step, at]] of marks.slice(0, -1).entries()) samples.set(step, [...(samples.get(step) ?? []), (marks[k + 1]?.[1] ?? at) - at]);
      await node.restartRuntime();
      await node.removeNetns(warmNetns);
      await assertReleased(`undisturbed cycle ${w}`, ref, disk);
    }
    const stepMs = new Map([...samples].map(([step, ms]) => [step, Math.min(...ms)]));

    const schedule = Array.from({ length: Math.ceil(ITERATIONS / TARGETS.length) }, () => TARGETS).flat().slice(0, ITERATIONS);
    for (const [i, target] of schedule.entries()) {
      const netns = await node.podNetns("ncsm4", `198.51.100.${100 + (i % 100)}/24`);
      const sandbox = { id: `sb-crash-${i}`, uid: podObject.metadata.uid, name: "sim-pod-crash", namespace: NS, netns: `/var/run/netns/${netns}` };
      let step = "start";
      let held: FileLock | undefined;
      const reached = Promise.withResolvers<undefined>();
      // The kill makes the step in flight fail; what matters is the state after the restart.
      const cycle = cycleSteps(sandbox, async (s) => {
        step = s;
        if (s !== target.step) return;
        // Holding host-local's pool lock keeps the plugin inside its run, as a concurrent
        // allocation from the same pool would.
        if (target.plugin !== undefined) held = await FileLock.acquire(poolLock);
        reached.resolve(undefined);
      }).catch(() => undefined);
      await Promise.race([reached.promise, cycle]);
      if (target.plugin === undefined) {
        await sleep(next() * (stepMs.get(target.step) ?? 0));
      } else {
        const command = target.plugin;
        await waitFor(`host-local ${command} to run for the claim`, async () => ((await hostLocalRuns(ref.uid)).some((r) => r.command === command) ? true : undefined));
      }
      const killedIn = step;
      await node.killAgent();
      // The agent starts plugins in a session of their own: one it ran outlives it, here
      // still waiting for the pool lock. The restarted agent must kill it before it runs a
      // DEL of its own, or the leftover ADD would write its lease after that DEL.
      const orphans = await hostLocalRuns(ref.uid);
      await cycle;
      const phase = phaseName(killedIn, orphans[0]?.command);
      phases.set(phase, (phases.get(phase) ?? 0) + 1);

      // The runtime re-synchronizes a restarted agent: a sandbox it ran is still running.
      await node.startAgent();
      const survivors = (await Promise.all(orphans.map(async (o) => ((await running(o.pid)) ? [o.pid] : [])))).flat();
      await held?.release();
      assert.deepEqual(survivors, [], `iteration ${i}: the restarted agent left the IPAM plugins its predecessor started running`);
      const where = `iteration ${i} (seed ${seed}, killed during ${phase})`;
      const record = await disk.claims.get(ref);
      const plan = record?.state === "prepared" ? parseClaimPlan(record.plan, where) : undefined;
      const inPod = (await links(netns)).filter((l) => l.ifname !== "lo" && l.ifname !== "net1");
      const onHost = (await links()).filter((l) => NICS.includes(l.ifname));
      // Never half: both devices in the pod, configured, or both on the host.
      if (inPod.length > 0) {
        assert.ok(plan, `${where}: devices are in the pod of a claim that is ${record?.state ?? "not prepared"}`);
        assert.deepEqual(inPod.map((l) => l.ifname).sort(), ["data0", "nc0"], `${where}: pod has ${inPod.map((l) => l.ifname).join(",")}`);
        const data0 = inPod.find((l) => l.ifname === "data0");
        assert.equal(data0?.mtu, 1450, where);
        assert.deepEqual(globalAddresses(data0), plan.devices.flatMap((d) => d.ipam?.addresses ?? []).sort(), `${where}: data0 has the leased addresses`);
        assert.equal(onHost.length, 0, `${where}: a device is both in the pod and on the host`);
        // Containers using the devices may be created now: every attach gate is open, naming its interface.
        const gates = await Promise.all((await attachGates(node.dir)).map(async (name) => (await readFile(join(gatesDir(node.dir), name), "utf8")).trim()));
        assert.deepEqual(gates.sort(), ["data0", "nc0"], `${where}: the attach gates`);
      } else {
        assert.deepEqual(hostView(onHost), hostBefore, `${where}: the host is not as it was`);
        assert.deepEqual(await attachGates(node.dir), [], `${where}: an attach gate is open with no device in the pod`);
      }
      await assertTaken(where, plan, killedIn === "unprepare", disk);
      // Finish the pod's life as the kubelet and runtime would (all idempotent).
      await node.runtime.command("stopPod", { pod: sandbox });
      assert.equal((await node.kubelet.unprepare(DRIVER, [ref])).response.claims?.[claim.metadata.uid]?.error ?? "", "", where);
      assert.deepEqual(hostView((await links()).filter((l) => NICS.includes(l.ifname))), hostBefore, `${where}: not restored after stop`);
      await assertReleased(where, ref, disk);
      await node.restartRuntime(); // forget the sandbox: the next iteration is a new pod start
      await node.removeNetns(netns);
    }
    assert.deepEqual(await stateFiles(node.dir, ["run/attachments", "state/dra-claims", "state/ipam-leases"]), [], "no attachment, claim or lease state left");
    const published = new Set((await nodeSlices(node.c, NODE)).flatMap((slice) => slice.spec.devices?.map((d) => d.name) ?? []));
    assert.deepEqual([...NICS, "pci-0000-3b-00-1"].filter((d) => !published.has(d)), [], "every device is still published");
    const distribution = JSON.stringify(Object.fromEntries([...phases].sort()));
    console.log(`crash points by phase (seed ${seed}, step ms ${JSON.stringify(Object.fromEntries([...stepMs].map(([s, ms]) => [s, Math.round(ms)])))}): ${distribution}`);
    for (const { step, plugin } of TARGETS) {
      const phase = phaseName(step, plugin);
      assert.ok((phases.get(phase) ?? 0) >= MIN_PER_PHASE, `kills during ${phase}: ${phases.get(phase) ?? 0}, fewer than ${MIN_PER_PHASE} (${distribution})`);
    }
    await node.deletePod(NS, "sim-pod-crash");
  });
});

interface Disk {
  claims: ClaimState;
  leases: Collection<{ containerId: string }>;
  /** The agent's CDI spec directory. */
  cdi: string;
  /** host-local's directory for the pool. */
  poolDir: string;
}

/**
 * What the claim holds outside the agent after a restart: only leases the
 * agent journaled, which its unprepare releases; and a prepared claim whose
 * unprepare had not begun, exactly the leases and CDI specs of its plan.
 */
async function assertTaken(where: string, plan: ClaimPlan | undefined, unpreparing: boolean, disk: Disk): Promise<void> {
  const held = await hostLocalLeases(disk.poolDir);
  if (plan !== undefined && !unpreparing) {
    const planned = plan.devices.flatMap((d) => (d.ipam === undefined ? [] : d.ipam.addresses.map((a) => `${d.ipam?.containerId ?? ""} ${a.split("/")[0] ?? ""}`)));
    assert.deepEqual(held, planned.sort(), `${where}: host-local's leases are the prepared claim's`);
    assert.deepEqual(await cdiDevices(disk.cdi), plan.devices.flatMap((d) => d.cdiDeviceIds).sort(), `${where}: the CDI specs are the prepared claim's`);
    assert.ok(plan.devices.some((d) => d.cdiDeviceIds.length > 0), `${where}: the RDMA device got a CDI spec`);
  }
  const journaled = new Set((await disk.leases.list()).map(([, lease]) => lease.containerId));
  const unknown = held.filter((lease) => !journaled.has(lease.split(" ")[0] ?? ""));
  assert.deepEqual(unknown, [], `${where}: host-local holds leases the agent never journaled`);
}

/** After unprepare: no claim record, no lease journaled or held, no CDI spec (nor a temporary one). */
async function assertReleased(where: string, claim: ClaimRef, disk: Disk): Promise<void> {
  assert.equal(await disk.claims.get(claim), undefined, `${where}: the claim is forgotten`);
  assert.deepEqual(await hostLocalLeases(disk.poolDir), [], `${where}: host-local holds no lease`);
  assert.deepEqual(await disk.leases.list(), [], `${where}: no lease is journaled`);
  assert.deepEqual(await readdir(disk.cdi), [], `${where}: no CDI spec is left`);
}

/** host-local's leases in the pool, as "<container id> <address>": one file per address, holding the container id. */
async function hostLocalLeases(poolDir: string): Promise<string[]> {
  const addresses = (await readdir(poolDir)).filter((name) => isIP(name) !== 0);
  const leases = await Promise.all(addresses.map(async (address) => `${(await readFile(join(poolDir, address), "utf8")).split(/\r?\n/)[0] ?? ""} ${address}`));
  return leases.sort();
}

function gatesDir(nodeDir: string): string {
  return join(nodeDir, "run", "attach-gates");
}

/** The attach gates open on the node (none while the directory was never made). */
async function attachGates(nodeDir: string): Promise<string[]> {
  return readdir(gatesDir(nodeDir)).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  });
}

/** The CDI device ids ("netclaim.dev/device=<name>") the spec files define; a file that is not a spec fails. */
async function cdiDevices(dir: string): Promise<string[]> {
  const files = await readdir(dir);
  const specs = await Promise.all(files.map(async (f) => JSON.parse(await readFile(join(dir, f), "utf8")) as { kind: string; devices: { name: string }[] }));
  return specs.flatMap((spec) => spec.devices.map((d) => `${spec.kind}=${d.name}`)).sort();
}

/** The host-local processes running for the claim (CNI_CONTAINERID is "<claim uid>-<device>"), with their CNI command. */
async function hostLocalRuns(claimUid: string): Promise<{ pid: number; command: string }[]> {
  const runs = await Promise.all(
    (await readdir("/proc")).filter((entry) => /^\d+$/.test(entry)).map(async (pid) => {
      try {
        if ((await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0")[0] !== HOST_LOCAL) return [];
        const env = new Map((await readFile(`/proc/${pid}/environ`, "utf8")).split("\0").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
        return env.get("CNI_CONTAINERID")?.startsWith(`${claimUid}-`) === true ? [{ pid: Number(pid), command: env.get("CNI_COMMAND") ?? "" }] : [];
      } catch {
        return []; // exited while we looked
      }
    }),
  );
  return runs.flat();
}

/** Whether the process lives (a zombie no reaper collected yet has finished). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return stat !== "" && !/^\d+ \(.*\) Z/s.test(stat);
}

function globalAddresses(link: LinkInfo | undefined): string[] {
  return (link?.addr_info ?? []).filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`).sort();
}

function hostView(list: readonly LinkInfo[]): unknown {
  return list
    .filter((l) => NICS.includes(l.ifname))
    .map((l) => ({ name: l.ifname, mtu: l.mtu, mac: l.address, addresses: (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`).sort() }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The records left in the agent's collections on disk (attachment journal,
 * prepared claims). Every collection named must exist, as it does once
 * written to: a wrong path fails here instead of reading as "nothing left".
 */
async function stateFiles(dir: string, collections: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const collection of collections) {
    const files = await readdir(join(dir, collection));
    out.push(...files.filter((f) => f.endsWith(".json")).map((f) => `${collection}/${f}`));
  }
  return out;
}
