/**
 * Child interfaces on a shared parent, on the real kernel (root): a veth
 * stands in for the parent NIC, macvlan children are created straight in
 * the pods' namespaces. The parent never leaves the host and must be
 * exactly as it was once its children are gone; a child dies with its
 * namespace (and with its parent), which is what recovery relies on.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, describe, it } from "node:test";
import { AttachEngine, EngineError, InjectedCrash, type AttachmentPlanInput, type RecoveryOutcome, type RecoveryResult, type Step } from "../../src/engine/index.ts";
import { NetlinkClient } from "../../src/netlink/index.ts";
import { StateStore } from "../../src/store/index.ts";
import { configureHostSide, hostSnapshot, ip, makeNetns, makeVeth, podHas, removeLink, tempStoreDir, type Netns } from "./helpers.ts";

const netlink = new NetlinkClient();
/** Each test's own journal, so one that fails leaves nothing for the next one's recovery. */
let store: StateStore;

after(async () => {
  running?.close();
  await netlink.close();
});

let running: AttachEngine | undefined;
/** The engine of a new agent process; the one before it lets go of what it held, as its process ending would. */
function startAgent(options: Omit<ConstructorParameters<typeof AttachEngine>[0], "netlink" | "store"> = {}): AttachEngine {
  running?.close();
  running = new AttachEngine({ netlink, store, ...options });
  return running;
}

let keys = 0;
function childPlan(parent: string, netns: Netns, n: number, extra: Partial<AttachmentPlanInput> = {}): AttachmentPlanInput {
  keys += 1;
  return {
    key: `child-${process.pid}-${keys}`,
    device: { name: parent },
    netns: netns.path,
    podName: "net1",
    mtu: 1400,
    mac: `02:00:00:00:aa:${n.toString(16).padStart(2, "0")}`,
    addresses: [`198.18.0.${n}/24`],
    routes: [{ destination: "198.18.1.0/24", gateway: "198.18.0.254" }],
    child: { kind: "macvlan", mode: "bridge" },
    ...extra,
  };
}

function ifindexOf(name: string): number {
  const [link] = JSON.parse(ip("-json", "link", "show", "dev", name)) as { ifindex: number }[];
  return link?.ifindex ?? 0;
}

/** What a child must leave alone: the parent's link facts, addresses and routes (promiscuity follows its children). */
function parentFacts(parent: string): unknown {
  const [link] = JSON.parse(ip("-json", "link", "show", "dev", parent)) as { ifindex: number; ifname: string; mtu: number; address: string; flags: string[] }[];
  const snapshot = hostSnapshot(parent) as { addrs: unknown; routes4: unknown; routes6: unknown };
  return { link: link && { ifindex: link.ifindex, ifname: link.ifname, mtu: link.mtu, address: link.address, flags: link.flags.filter((f) => f !== "PROMISC") }, addrs: snapshot.addrs, routes: [snapshot.routes4, snapshot.routes6] };
}

function childIn(netns: Netns, name = "net1"): { kind: string | undefined; mtu: number; address: string; up: boolean; parentIndex?: number } | undefined {
  const out = execFileSync("ip", ["-n", netns.name, "-json", "-details", "link", "show"], { encoding: "utf8" });
  const link = (JSON.parse(out) as { ifname: string; mtu: number; address: string; flags: string[]; link_index?: number; linkinfo?: { info_kind?: string } }[]).find((l) => l.ifname === name);
  if (link === undefined) return undefined;
  return { kind: link.linkinfo?.info_kind, mtu: link.mtu, address: link.address, up: link.flags.includes("UP"), ...(link.link_index !== undefined && { parentIndex: link.link_index }) };
}

async function withParent(fn: (parent: string, pods: [Netns, Netns]) => Promise<void>): Promise<void> {
  const storeDir = await tempStoreDir();
  store = await StateStore.open(storeDir.dir);
  const parent = makeVeth();
  const pods: [Netns, Netns] = [makeNetns(), makeNetns()];
  try {
    configureHostSide(parent, 21);
    await fn(parent, pods);
  } finally {
    running?.close();
    for (const pod of pods) pod.remove();
    removeLink(parent);
    await storeDir.remove();
  }
}

function outcomes(results: ReadonlyMap<string, RecoveryResult>): Map<string, RecoveryOutcome> {
  return new Map([...results].map(([key, result]) => [key, result.outcome]));
}

function crashAt(target: Step): (step: Step) => void {
  return (step) => {
    if (step === target) throw new InjectedCrash(step);
  };
}

describe("child interfaces on a shared parent", () => {
  it("creates a configured macvlan child in each pod, the pods reach each other over them, and detach deletes them; the parent never changes", async () => {
    await withParent(async (parent, [podA, podB]) => {
      const hostBefore = hostSnapshot(parent);
      const factsBefore = parentFacts(parent);
      const parentIndex = ifindexOf(parent);
      const engine = startAgent();
      const a = childPlan(parent, podA, 1);
      const b = childPlan(parent, podB, 2);
      const [resultA] = await engine.attach([a]);
      await engine.attach([b]);
      assert.equal(resultA?.mac, "02:00:00:00:aa:01");
      assert.deepEqual(childIn(podA), { kind: "macvlan", mtu: 1400, address: "02:00:00:00:aa:01", up: true, parentIndex });
      assert.ok(podHas(podA, ["addr", "show", "dev", "net1"], "198.18.0.1/24"));
      assert.ok(podHas(podA, ["route", "show"], "198.18.1.0/24 via 198.18.0.254"));
      assert.deepEqual(parentFacts(parent), factsBefore, "the parent keeps its name, index, MTU, MAC, addresses and routes");
      // Bridge mode: children of one parent reach each other without leaving it.
      execFileSync("ip", ["netns", "exec", podA.name, "busybox", "ping", "-c", "1", "-W", "2", "198.18.0.2"], { stdio: "ignore" });
      // Not the parent's host address: nothing routes there from the pod's subnet.
      assert.throws(() => execFileSync("ip", ["netns", "exec", podA.name, "busybox", "ping", "-c", "1", "-W", "1", "198.51.100.21"], { stdio: "ignore" }));
      assert.deepEqual(await engine.detach([a.key, b.key]), new Map([[a.key, "restored"], [b.key, "restored"]]));
      assert.equal(childIn(podA), undefined);
      assert.equal(childIn(podB), undefined);
      assert.deepEqual(hostSnapshot(parent), hostBefore);
      assert.deepEqual(await engine.attachments(), []);
    });
  });

  it("creates a child beside a device it moves in the same attach, each at a free ifindex", async () => {
    await withParent(async (parent, [pod]) => {
      const nic = makeVeth();
      try {
        configureHostSide(nic, 22);
        const nicIndex = ifindexOf(nic);
        const engine = startAgent();
        const moved: AttachmentPlanInput = { key: `moved-${process.pid}-${keys++}`, device: { name: nic }, netns: pod.path, podName: "net2", addresses: ["198.18.2.1/24"] };
        const results = await engine.attach([childPlan(parent, pod, 3), moved]);
        const indexes = results.map((r) => r.ifindex);
        assert.equal(new Set(indexes).size, 2);
        assert.ok(indexes.includes(nicIndex), "the moved device keeps its host ifindex");
        assert.equal(childIn(pod)?.kind, "macvlan");
        await engine.detach(results.map((r) => r.key));
        assert.equal(childIn(pod), undefined);
        ip("link", "show", "dev", nic);
      } finally {
        removeLink(nic);
      }
    });
  });

  for (const step of ["create", "configure", "verify"] as const) {
    it(`recovers an attach killed before step ${step}: the child is there, configured, once`, async () => {
      await withParent(async (parent, [pod]) => {
        const p = childPlan(parent, pod, 4);
        await assert.rejects(startAgent({ beforeStep: crashAt(step) }).attach([p]), InjectedCrash);
        const restarted = startAgent();
        assert.deepEqual(outcomes(await restarted.recover()), new Map([[p.key, "attached"]]));
        assert.equal(childIn(pod)?.up, true);
        assert.ok(podHas(pod, ["addr", "show", "dev", "net1"], "198.18.0.4/24"));
        assert.equal(ip("-n", pod.name, "-o", "link", "show", "type", "macvlan").trim().split("\n").length, 1, "exactly one child");
        await restarted.detach([p.key]);
      });
    });
  }

  for (const step of ["delete-child", "forget"] as const) {
    it(`recovers a detach killed before step ${step}: no child is left and the parent is as it was`, async () => {
      await withParent(async (parent, [pod]) => {
        const hostBefore = hostSnapshot(parent);
        const p = childPlan(parent, pod, 5);
        await startAgent().attach([p]);
        await assert.rejects(startAgent({ beforeStep: crashAt(step) }).detach([p.key]), InjectedCrash);
        const restarted = startAgent();
        assert.deepEqual(outcomes(await restarted.recover()), new Map([[p.key, "restored"]]));
        assert.equal(childIn(pod), undefined);
        assert.deepEqual(hostSnapshot(parent), hostBefore);
        assert.deepEqual(await restarted.attachments(), []);
      });
    });
  }

  it("forgets a child whose pod namespace is gone (it died with it), and records one whose parent vanished as lost", async () => {
    await withParent(async (parent, [podA, podB]) => {
      const factsBefore = parentFacts(parent);
      const a = childPlan(parent, podA, 6);
      const b = childPlan(parent, podB, 7);
      const engine = startAgent();
      await engine.attach([a]);
      await engine.attach([b]);
      engine.close();
      podA.remove();
      assert.deepEqual(outcomes(await startAgent().recover()), new Map([[a.key, "restored"], [b.key, "attached"]]));
      assert.deepEqual(parentFacts(parent), factsBefore);
      removeLink(parent);
      assert.equal(childIn(podB), undefined, "a child dies with its parent");
      assert.deepEqual(outcomes(await startAgent().recover()), new Map([[b.key, "lost"]]));
      assert.deepEqual(await startAgent().detach([b.key]), new Map([[b.key, "restored"]]));
    });
  });

  it("refuses a second child of the same name in the pod before creating anything", async () => {
    await withParent(async (parent, [pod]) => {
      const engine = startAgent();
      const first = childPlan(parent, pod, 8);
      await engine.attach([first]);
      const second = childPlan(parent, pod, 9);
      await assert.rejects(engine.attach([second]), (err: unknown) => err instanceof EngineError && err.code === "ENGINE_NAME_COLLISION");
      assert.equal(ip("-n", pod.name, "-o", "link", "show", "type", "macvlan").trim().split("\n").length, 1);
      assert.deepEqual(await engine.attachments(), [first.key]);
      await engine.detach([first.key]);
    });
  });
});
