// kill -9 of the agent at random points of prepare, attach, detach and
// unprepare, many times over: after every restart each device is either fully
// in its pod with its configuration or fully back on the host as it was, and
// finishing the pod's life cycle leaves nothing behind.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { DRIVER, links, SimNode, type LinkInfo, type Sandbox } from "./harness.ts";
import { claimTemplate, deviceClass, pod, scheduledClaim } from "./objects.ts";

const NODE = "nc-sim-4";
const NS = "default";
/** Crash points in this suite; each costs an agent restart (about a second). */
const ITERATIONS = Number(process.env["NETCLAIM_CRASH_ITERATIONS"] ?? 100);
const NICS = ["ncsc0", "ncsc1"];

describe("node simulator: kill -9 at random points", { timeout: 1_800_000 }, () => {
  let node: SimNode;

  before(async () => {
    node = await SimNode.create(NODE, { nicPrefix: "ncsc" });
    for (const nic of NICS) await node.addNic(nic);
    await node.addNic("ncsm4");
    await node.startAgent();
    await node.apply(deviceClass());
    await node.apply(
      claimTemplate(NS, "sim-crash", {
        interface: { name: "data0", mtu: 1450, addresses: ["198.51.100.40/24", "fd00:40::40/64"] },
        routes: [{ destination: "203.0.113.0/24", gateway: "198.51.100.1" }],
      }),
    );
  });

  after(async () => {
    await node.cleanup();
  });

  // Each crash costs about 3 s here (kill, restart, registration, checks, teardown): the
  // suite-wide per-test timeout is too short for 100 of them.
  it(`converges after ${ITERATIONS} crashes`, { timeout: 60_000 + ITERATIONS * 6_000 }, async () => {
    await node.deletePod(NS, "sim-pod-crash");
    await node.apply(pod(NS, NODE, "sim-pod-crash", "sim-crash"));
    const { pod: podObject, claim } = await scheduledClaim(node, NS, NODE, "sim-pod-crash");
    const ref = { namespace: NS, name: claim.metadata.name, uid: claim.metadata.uid };
    const hostBefore = hostView(await links());
    const seed = Number(process.env["NETCLAIM_CRASH_SEED"] ?? Date.now() % 100_000);
    let random = seed;
    const next = (): number => {
      random = (random * 48271) % 2147483647;
      return random / 2147483647;
    };
    const phases = new Map<string, number>();
    const cycleSteps = async (sandbox: Sandbox, onPhase: (phase: string) => void): Promise<void> => {
      onPhase("prepare");
      await node.kubelet.prepare(DRIVER, [ref]);
      onPhase("attach");
      await node.startPod(sandbox);
      await node.runtime.command("addRunningPod", { pod: sandbox });
      onPhase("detach");
      await node.runtime.command("stopPod", { pod: sandbox });
      onPhase("unprepare");
      await node.kubelet.unprepare(DRIVER, [ref]);
      onPhase("done");
    };
    // One undisturbed cycle tells how long a cycle takes here, so kills spread over all of it.
    const warmNetns = await node.podNetns("ncsm4", "198.51.100.99/24");
    const started = performance.now();
    await cycleSteps({ id: "sb-warm", uid: podObject.metadata.uid, name: "sim-pod-crash", namespace: NS, netns: `/var/run/netns/${warmNetns}` }, () => undefined);
    const cycleMs = performance.now() - started;
    await node.restartRuntime();
    await node.removeNetns(warmNetns);

    for (let i = 0; i < ITERATIONS; i++) {
      const netns = await node.podNetns("ncsm4", `198.51.100.${100 + (i % 100)}/24`);
      const sandbox = { id: `sb-crash-${i}`, uid: podObject.metadata.uid, name: "sim-pod-crash", namespace: NS, netns: `/var/run/netns/${netns}` };
      let phase = "start";
      // The kill makes the step in flight fail; what matters is the state after the restart.
      const cycle = cycleSteps(sandbox, (p) => (phase = p)).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, next() * cycleMs));
      const killedIn = phase;
      await node.killAgent();
      await cycle;
      phases.set(killedIn, (phases.get(killedIn) ?? 0) + 1);

      // The runtime re-synchronizes a restarted agent: a sandbox it ran is still running.
      await node.startAgent();
      const where = `iteration ${i} (seed ${seed}, killed during ${killedIn})`;
      const inPod = (await links(netns)).filter((l) => l.ifname !== "lo" && l.ifname !== "net1");
      const onHost = (await links()).filter((l) => NICS.includes(l.ifname));
      // Never half: both devices in the pod, configured, or both on the host.
      if (inPod.length > 0) {
        assert.deepEqual(inPod.map((l) => l.ifname).sort(), ["data0", "nc0"], `${where}: pod has ${inPod.map((l) => l.ifname).join(",")}`);
        const data0 = inPod.find((l) => l.ifname === "data0");
        assert.equal(data0?.mtu, 1450, where);
        assert.deepEqual(globalAddresses(data0), ["198.51.100.40/24", "fd00:40::40/64"], where);
        assert.equal(onHost.length, 0, `${where}: a device is both in the pod and on the host`);
      } else {
        assert.deepEqual(hostView(onHost), hostBefore, `${where}: the host is not as it was`);
      }
      // Finish the pod's life as the kubelet and runtime would (all idempotent).
      await node.runtime.command("stopPod", { pod: sandbox });
      assert.equal((await node.kubelet.unprepare(DRIVER, [ref])).response.claims?.[claim.metadata.uid]?.error ?? "", "", where);
      assert.deepEqual(hostView((await links()).filter((l) => NICS.includes(l.ifname))), hostBefore, `${where}: not restored after stop`);
      await node.restartRuntime(); // forget the sandbox: the next iteration is a new pod start
      await node.removeNetns(netns);
    }
    assert.deepEqual(await stateFiles(node.dir, ["run/attachments", "state/dra-claims"]), [], "no attachment or claim state left");
    // The claims have static addresses: prepare never journals a lease, so the collection never appears.
    assert.equal(existsSync(join(node.dir, "state/ipam-leases")), false, "no IPAM lease was ever journaled");
    console.log(`crash points by phase (seed ${seed}, cycle ${cycleMs.toFixed(0)} ms): ${JSON.stringify(Object.fromEntries(phases))}`);
    await node.deletePod(NS, "sim-pod-crash");
  });
});

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
