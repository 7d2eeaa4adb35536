/**
 * The attach engine on the real kernel (root): veth and bridge devices
 * stand in for NICs. Every round trip must leave the host exactly as it was.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AttachEngine, EngineError, EngineThread, InjectedCrash, type AttachmentPlanInput, type RecoveryOutcome, type RecoveryResult, type Step,
} from "../../src/engine/index.ts";
import { NetlinkClient, NetlinkError, type PlacedOp } from "../../src/netlink/index.ts";
import { StateStore } from "../../src/store/index.ts";
import {
  configureHostSide, hostSnapshot, ip, makeNetns, makeVeth, podHas, removeLink, tempStoreDir, tryIp, uniq, type Netns,
} from "./helpers.ts";

const netlink = new NetlinkClient();
let storeDir: { dir: string; remove(): Promise<void> };
let store: StateStore;

before(async () => {
  storeDir = await tempStoreDir();
  store = await StateStore.open(storeDir.dir);
});

after(async () => {
  await netlink.close();
  await storeDir.remove();
});

/** Whether this process holds the namespace at `ns` (from statSync of its path) open: stat follows /proc's fd links to it. */
function holdsNamespace(ns: { dev: number; ino: number }): boolean {
  return readdirSync("/proc/self/fd").some((fd) => {
    try {
      const target = statSync(`/proc/self/fd/${fd}`);
      return target.dev === ns.dev && target.ino === ns.ino;
    } catch {
      return false;
    }
  });
}

let running: AttachEngine | undefined;
/**
 * The engine of a new agent process: the one before it stops first, and so lets go of the
 * namespaces it held, as its process ending would.
 */
function startAgent(options: ConstructorParameters<typeof AttachEngine>[0]): AttachEngine {
  running?.close();
  running = new AttachEngine(options);
  return running;
}

let keyCounter = 0;
function plan(nic: string, netns: Netns, podName: string, n: number, extra: Partial<AttachmentPlanInput> = {}): AttachmentPlanInput {
  keyCounter += 1;
  return {
    key: `claim-${process.pid}-${keyCounter}`,
    device: { name: nic },
    netns: netns.path,
    podName,
    mtu: 1400,
    mac: `02:00:00:00:${(n >> 8).toString(16).padStart(2, "0")}:${(n & 0xff).toString(16).padStart(2, "0")}`,
    addresses: [`203.0.113.${n}/24`, `fd00:99::${n.toString(16)}/64`],
    routes: [
      { destination: "198.51.100.0/25", gateway: "203.0.113.254", table: 2000 + n },
      { destination: "fd00:98::/64", gateway: "fd00:99::1" },
      { destination: "198.51.100.128/25", scope: "link" },
    ],
    ...extra,
  };
}

/** `count` stand-in NICs with host state worth restoring (host numbers `first`, `first + 1`, ...) and an empty pod. */
async function withDevices(count: number, first: number, fn: (nics: string[], netns: Netns) => Promise<void>): Promise<void> {
  const netns = makeNetns();
  const nics = Array.from({ length: count }, () => makeVeth());
  try {
    nics.forEach((nic, i) => {
      configureHostSide(nic, first + i);
    });
    await fn(nics, netns);
  } finally {
    netns.remove();
    nics.forEach(removeLink);
  }
}

async function withSetup(fn: (nic: string, netns: Netns) => Promise<void>): Promise<void> {
  await withDevices(1, 7, ([nic = ""], netns) => fn(nic, netns));
}

function assertAttached(netns: Netns, podName: string, n: number): void {
  assert.ok(podHas(netns, ["-json", "link", "show", "dev", podName], `"mtu":1400`), "MTU in pod");
  assert.ok(podHas(netns, ["addr", "show", "dev", podName], `203.0.113.${n}/24`), "IPv4 in pod");
  assert.ok(podHas(netns, ["addr", "show", "dev", podName], `fd00:99::${n.toString(16)}/64`), "IPv6 in pod");
  assert.ok(podHas(netns, ["route", "show", "table", String(2000 + n)], "198.51.100.0/25 via 203.0.113.254"), "route in table > 255");
  assert.ok(podHas(netns, ["-6", "route", "show"], "fd00:98::/64 via fd00:99::1"), "IPv6 route");
  assert.ok(podHas(netns, ["link", "show", "dev", podName], ",UP"), "link up");
}

describe("attach engine on the real kernel", () => {
  it("attach + detach round trip restores the host exactly (IPv4, IPv6, table > 255, sysctls)", async () => {
    await withSetup(async (nic, netns) => {
      const hostBefore = hostSnapshot(nic);
      const engine = startAgent({ netlink, store });
      const p = plan(nic, netns, "net1", 5, { sysctls: { "net.ipv4.conf.net1.arp_ignore": "2" } });
      const [result] = await engine.attach([p]);
      assert.equal(result?.podName, "net1");
      assertAttached(netns, "net1", 5);
      // The sysctl was written in the pod's namespace, not the agent's.
      assert.equal(execFileSync("ip", ["netns", "exec", netns.name, "cat", "/proc/sys/net/ipv4/conf/net1/arp_ignore"], { encoding: "utf8" }).trim(), "2");
      assert.equal(existsSync("/proc/sys/net/ipv4/conf/net1"), false);
      assert.throws(() => ip("link", "show", "dev", nic), "device left the host");
      assert.deepEqual(await engine.detach([p.key]), new Map([[p.key, "restored"]]));
      assert.deepEqual(hostSnapshot(nic), hostBefore);
      assert.deepEqual(await engine.attachments(), []);
    });
  });

  it("restores a device at its host ifindex, or at another one when the host gave that index away meanwhile", async () => {
    await withSetup(async (nic, netns) => {
      const hostIndex = (): number => (JSON.parse(ip("-json", "link", "show", "dev", nic)) as [{ ifindex: number }])[0].ifindex;
      const recorded = hostIndex();
      const engine = startAgent({ netlink, store });
      const p = plan(nic, netns, "net1", 8);
      await engine.attach([p]);
      // While the device is in its pod its host index is free; a new host
      // link may take it (here asked for explicitly).
      const squatter = `${nic.slice(0, -1)}s`;
      ip("link", "add", squatter, "index", String(recorded), "type", "veth", "peer", "name", `${nic.slice(0, -1)}t`);
      try {
        assert.deepEqual(await engine.detach([p.key]), new Map([[p.key, "restored"]]));
        assert.notEqual(hostIndex(), recorded);
        assert.ok(ip("addr", "show", "dev", nic).includes("198.51.100.7/24"), "host address restored");
        assert.ok(ip("route", "show", "table", "1007").includes("198.18.128.0/25"), "host route in its table restored");
        assert.ok(ip("link", "show", "dev", nic).includes("mtu 1450"), "host MTU restored");
        assert.equal(ip("-json", "link", "show", "dev", squatter).includes(`"ifindex":${recorded}`), true, "the other link keeps its index");
      } finally {
        tryIp("link", "del", squatter);
      }
    });
  });

  it("attaches 8 devices into one pod in pod-name order and restores all of them", async () => {
    await withDevices(8, 10, async (nics, netns) => {
      const before = nics.map((nic) => hostSnapshot(nic));
      const engine = startAgent({ netlink, store });
      // Given in reverse: the engine must still attach in pod-name order.
      const plans = nics.map((nic, i) => plan(nic, netns, `net${i + 1}`, 10 + i)).reverse();
      const results = await engine.attach(plans);
      assert.deepEqual(results.map((r) => r.podName), ["net1", "net2", "net3", "net4", "net5", "net6", "net7", "net8"]);
      nics.forEach((_, i) => {
        assertAttached(netns, `net${i + 1}`, 10 + i);
      });
      await engine.detach(plans.map((p) => p.key));
      assert.deepEqual(nics.map((nic) => hostSnapshot(nic)), before);
    });
  });

  it("sets a plan's sysctls before its device comes up; without sysctls the move itself brings it up", async () => {
    await withDevices(2, 30, async ([tuned = "", plain = ""], netns) => {
      const engine = startAgent({ netlink, store });
      // addr_gen_mode 1: no IPv6 link-local address, if set before the device is up.
      const plans = [
        plan(tuned, netns, "net1", 30, { sysctls: { "net.ipv6.conf.net1.addr_gen_mode": "1" } }),
        plan(plain, netns, "net2", 31),
      ];
      await engine.attach(plans);
      assertAttached(netns, "net1", 30);
      assertAttached(netns, "net2", 31);
      assert.ok(!podHas(netns, ["-6", "addr", "show", "dev", "net1"], "fe80:"), "net1 came up before its sysctl was set");
      assert.ok(podHas(netns, ["-6", "addr", "show", "dev", "net2"], "fe80:"), "net2 has its link-local address");
      await engine.detach(plans.map((p) => p.key));
    });
  });

  it("makes one worker round trip for the checks and one for every device's move and configuration", async () => {
    const batches: (readonly PlacedOp[])[] = [];
    const counting = new NetlinkClient({ onOpTimes: (ops) => batches.push(ops) });
    try {
      await withDevices(3, 20, async (nics, netns) => {
        const engine = startAgent({ netlink: counting, store });
        const plans = nics.map((nic, i) => plan(nic, netns, `net${i + 1}`, 20 + i));
        await counting.start();
        batches.length = 0;
        await engine.attach(plans);
        assert.equal(batches.length, 2);
        // Each move brings its device up (no sysctls to set first), and each
        // device's work in the pod goes to the kernel in one datagram.
        const work = batches[1] ?? [];
        const moves = work.filter(({ op }) => op.op === "setLink" && op.update.netns !== undefined);
        assert.equal(moves.length, 3);
        assert.ok(moves.every(({ op }) => op.op === "setLink" && op.update.up === true));
        assert.ok(!work.some(({ op }) => op.op === "setLink" && op.update.netns === undefined), "no separate request brings a device up");
        assert.ok(work.filter(({ netns: where }) => where === netns.path).every((o) => o.pipelined === true));
        nics.forEach((_, i) => {
          assertAttached(netns, `net${i + 1}`, 20 + i);
        });
        await engine.detach(plans.map((p) => p.key));
      });
    } finally {
      await counting.close();
    }
  });

  it("names the device whose step the kernel refused among several, and restores every one", async () => {
    await withDevices(3, 2, async (nics, netns) => {
      const before = nics.map((nic) => hostSnapshot(nic));
      const engine = startAgent({ netlink, store });
      // net2's gateway is on none of its subnets: the kernel says ENETUNREACH.
      const plans = nics.map((nic, i) => plan(nic, netns, `net${i + 1}`, 2 + i, i === 1 ? { routes: [{ destination: "198.51.100.0/24", gateway: "192.168.250.1" }] } : {}));
      await assert.rejects(engine.attach(plans), (err: unknown) => {
        assert.ok(err instanceof EngineError);
        assert.equal(err.step, "routes");
        assert.equal(err.attachment, plans[1]?.key);
        assert.equal(err.device, nics[1]);
        return true;
      });
      assert.deepEqual(nics.map((nic) => hostSnapshot(nic)), before);
      assert.deepEqual(await engine.attachments(), []);
    });
  });

  it("tells the caller the attach is checked and journaled before the first device moves", async () => {
    await withSetup(async (nic, netns) => {
      const engine = startAgent({ netlink, store });
      const p = plan(nic, netns, "net1", 5);
      const record = join(storeDir.dir, "attachments", `${p.key}.json`);
      let whenChecked: { onHost: boolean; journaled: boolean } | undefined;
      const { done } = await engine.begin([p], {
        onChecked: () => {
          whenChecked = { onHost: ip("link", "show", "dev", nic).includes(nic), journaled: existsSync(record) };
        },
      });
      assert.deepEqual(whenChecked, { onHost: true, journaled: true });
      await done;
      assertAttached(netns, "net1", 5);
      await engine.detach([p.key]);
    });
  });

  it("rejects a pod-side name that already exists in the pod before anything moves, and does not keep holding the pod's namespace", async () => {
    await withSetup(async (nic, netns) => {
      ip("-n", netns.name, "link", "add", "net1", "type", "veth", "peer", "name", "nctest-mpeer");
      const hostBefore = hostSnapshot(nic);
      const engine = startAgent({ netlink, store });
      await assert.rejects(engine.attach([plan(nic, netns, "net1", 5)]), (err: unknown) => {
        assert.ok(err instanceof EngineError);
        assert.equal(err.code, "ENGINE_NAME_COLLISION");
        assert.match(err.message, /already has an interface named net1/);
        assert.match(err.message, new RegExp(nic));
        return true;
      });
      assert.deepEqual(hostSnapshot(nic), hostBefore);
      assert.deepEqual(await engine.attachments(), []);
      // The check held the namespace from its first lookup; the netlink thread lets go of its own once idle.
      const namespace = statSync(netns.path);
      for (let wait = 0; wait < 100 && holdsNamespace(namespace); wait++) await sleep(10);
      assert.equal(holdsNamespace(namespace), false, "a failed check lets the pod's namespace go");
    });
  });

  it("reports a missing device by its identity and moves nothing", async () => {
    const netns = makeNetns();
    try {
      const engine = startAgent({ netlink, store });
      await assert.rejects(engine.attach([plan("nctest-none0", netns, "net1", 5)]), (err: unknown) => {
        assert.ok(err instanceof EngineError);
        assert.equal(err.code, "ENGINE_DEVICE_MISSING");
        assert.equal(err.device, "nctest-none0");
        assert.equal(err.step, "resolve");
        return true;
      });
    } finally {
      netns.remove();
    }
  });

  it("finds a device returned to the host under its pod-side name after the netns died, and restores it", async () => {
    await withSetup(async (nic, netns) => {
      const hostBefore = hostSnapshot(nic);
      const engine = startAgent({ netlink, store });
      const p = plan(nic, netns, "net1", 6);
      await engine.attach([p]);
      // What the kernel does to a physical NIC when a runtime (CRI-O)
      // destroys the netns first: the device lands in the host namespace
      // under its pod-side name, with the pod's MAC and MTU and no
      // addresses. (On this kernel veth, macvlan and bridge devices are
      // destroyed with their namespace rather than returned, so the test
      // hands the device back itself and then destroys the namespace.)
      ip("-n", netns.name, "link", "set", "net1", "netns", "1");
      netns.remove();
      assert.ok(ip("link", "show", "dev", "net1").includes("02:00:00:00:00:06"));
      assert.deepEqual(await engine.detach([p.key]), new Map([[p.key, "restored"]]));
      assert.deepEqual(hostSnapshot(nic), hostBefore);
    });
  });

  it("holds the pod's namespace while its devices are in it, so a detach after the runtime removed it (CRI-O's order) restores exactly, then lets it go", async () => {
    await withDevices(2, 30, async (nics, netns) => {
      const before = nics.map((nic) => hostSnapshot(nic));
      const engine = startAgent({ netlink, store });
      const plans = nics.map((nic, i) => plan(nic, netns, `net${String(i + 1)}`, 30 + i));
      await engine.attach(plans);
      const namespace = statSync(netns.path);
      // CRI-O unmounts and removes the namespace before NRI StopPodSandbox (cri-o#9905). Unheld,
      // it would die here, and the veth stand-ins with it (a physical NIC would come back bare).
      netns.remove();
      assert.equal(existsSync(netns.path), false);
      const [first, second] = plans;
      assert.deepEqual(await engine.detach([first?.key ?? ""]), new Map([[first?.key, "restored"]]));
      assert.deepEqual(hostSnapshot(nics[0] ?? ""), before[0]);
      assert.ok(holdsNamespace(namespace), "the namespace stays held while a device is in it");
      assert.deepEqual(await engine.detach([second?.key ?? ""]), new Map([[second?.key, "restored"]]));
      assert.deepEqual(hostSnapshot(nics[1] ?? ""), before[1]);
      assert.equal(holdsNamespace(namespace), false, "the last device out lets the namespace go");
    });
  });

  it("takes up the namespaces another agent's engine journaled (a rolling update), so the device comes back after that agent stops and the runtime removes the namespace", async () => {
    await withSetup(async (nic, netns) => {
      const before = hostSnapshot(nic);
      // Two agents share the journal; the old one attaches after the new one started.
      const newAgent = new AttachEngine({ netlink, store });
      const oldAgent = new AttachEngine({ netlink, store });
      const p = plan(nic, netns, "net1", 9);
      try {
        await oldAgent.attach([p]);
        await newAgent.adopt();
        oldAgent.close();
        const namespace = statSync(netns.path);
        netns.remove();
        assert.ok(holdsNamespace(namespace), "the new agent holds the namespace the old one attached into");
        assert.deepEqual(await newAgent.detach([p.key]), new Map([[p.key, "restored"]]));
        assert.deepEqual(hostSnapshot(nic), before);
        assert.equal(holdsNamespace(namespace), false);
        // A record the other agent deletes is let go of too.
        const other = makeNetns();
        const q = plan(nic, other, "net1", 10);
        try {
          await oldAgent.attach([q]);
          await newAgent.adopt();
          await oldAgent.detach([q.key]);
          const otherNamespace = statSync(other.path);
          await newAgent.adopt();
          oldAgent.close();
          assert.equal(holdsNamespace(otherNamespace), false, "nothing holds a namespace no attachment is in");
        } finally {
          other.remove();
        }
      } finally {
        oldAgent.close();
        newAgent.close();
      }
    });
  });

  it("reads each attached device's carrier in its pod: up, gone when the link partner goes down, missing once the device vanished", async () => {
    await withDevices(1, 26, async ([nic = ""], netns) => {
      const engine = startAgent({ netlink, store });
      const attached = plan(nic, netns, "net1", 26);
      await engine.attach([attached]);
      const partner = `${nic.slice(0, -1)}b`; // the veth's peer, on the host: the stand-in's cable
      const state = async () => {
        const link = (await engine.podLinks()).get(attached.key);
        return link === null || link === undefined ? link : { name: link.name, up: link.up, carrier: link.carrier };
      };
      assert.deepEqual(await state(), { name: "net1", up: true, carrier: true });
      ip("link", "set", partner, "down");
      assert.deepEqual(await state(), { name: "net1", up: true, carrier: false });
      ip("link", "set", partner, "up");
      assert.deepEqual(await state(), { name: "net1", up: true, carrier: true });
      // A veth dies with its peer: the device vanishes from the pod, as a hot-unplugged NIC would.
      ip("link", "del", partner);
      assert.equal(await state(), null);
      await engine.detach([attached.key]);
      assert.equal(await state(), undefined, "a detached device is not reported");
    });
  });

  it("names the device and the step when the kernel refuses a step, and rolls the device back", async () => {
    await withSetup(async (nic, netns) => {
      const hostBefore = hostSnapshot(nic);
      const engine = startAgent({ netlink, store });
      // The gateway is not on any attached subnet: the kernel says ENETUNREACH.
      const p = plan(nic, netns, "net1", 5, { routes: [{ destination: "198.51.100.0/24", gateway: "192.168.250.1" }] });
      await assert.rejects(engine.attach([p]), (err: unknown) => {
        assert.ok(err instanceof EngineError);
        assert.equal(err.code, "ENGINE_STEP_FAILED");
        assert.equal(err.step, "routes");
        assert.match(err.message, /net1/);
        assert.match(err.message, /ENETUNREACH/);
        return true;
      });
      assert.deepEqual(hostSnapshot(nic), hostBefore);
      assert.deepEqual(await engine.attachments(), []);
    });
  });

  it("moves an exclusive-mode RDMA device with its netdev and returns it first on detach", async () => {
    await withSetup(async (nic, netns) => {
      const calls: string[] = [];
      const rdma = {
        rdmaListDevices: () => Promise.resolve([{ index: 3, name: "mlx5_0" }]),
        rdmaSetNetns: (index: number, device: string, target: string) => {
          calls.push(`${device}#${index}->${target}`);
          return Promise.resolve(null);
        },
      };
      const engine = startAgent({ netlink, store, rdma, beforeStep: (step) => calls.push(step) });
      const p = plan(nic, netns, "net1", 5, { rdma: { device: "mlx5_0", mode: "exclusive" } });
      await engine.attach([p]);
      await engine.detach([p.key]);
      assert.deepEqual(calls, [
        "move", "configure", "set-up", "routes", "rdma", `mlx5_0#3->${netns.path}`, "verify",
        "rdma-return", "mlx5_0#3->/proc/self/ns/net", "move-out", "restore-link", "restore-addresses", "restore-up", "restore-routes", "forget",
      ]);
    });
  });

  const attachSteps: Step[] = ["move", "configure", "set-up", "routes", "verify"];
  for (const step of attachSteps) {
    it(`recovers an attach killed before step ${step}: completes it while the pod lives`, async () => {
      await withSetup(async (nic, netns) => {
        const hostBefore = hostSnapshot(nic);
        const crashing = startAgent({ netlink, store, beforeStep: crashAt(step) });
        const p = plan(nic, netns, "net1", 5);
        await assert.rejects(crashing.attach([p]), InjectedCrash);
        const restarted = startAgent({ netlink, store });
        assert.deepEqual(outcomes(await restarted.recover()), new Map([[p.key, "attached"]]));
        assertAttached(netns, "net1", 5);
        await restarted.detach([p.key]);
        assert.deepEqual(hostSnapshot(nic), hostBefore);
      });
    });
  }

  it("keeps an attachment's gate open exactly while its device is attached in its pod, across a crash, recovery and loss", async () => {
    await withDevices(2, 30, async ([nic = "", vanishing = ""], netns) => {
      const gateDir = join(storeDir.dir, `gates-${uniq()}`);
      const gate = (key: string): string | undefined => (existsSync(join(gateDir, key)) ? readFileSync(join(gateDir, key), "utf8") : undefined);
      const p = plan(nic, netns, "net1", 30);
      const q = plan(vanishing, netns, "net2", 31);
      // Killed after the configuration, before the read-back: attached in the kernel, not yet done.
      const crashing = startAgent({ netlink, store, gateDir, beforeStep: crashAt("verify") });
      await assert.rejects(crashing.attach([p, q]), InjectedCrash);
      assert.equal(gate(p.key), undefined, "no gate before the attach is done");
      const restarted = startAgent({ netlink, store, gateDir });
      assert.deepEqual(outcomes(await restarted.recover()), new Map([[p.key, "attached"], [q.key, "attached"]]));
      assert.equal(gate(p.key), "net1\n", "open once recovery finished the attach, naming the interface");
      assert.equal(gate(q.key), "net2\n");
      ip("link", "del", `${vanishing.slice(0, -1)}b`);
      const again = startAgent({ netlink, store, gateDir });
      assert.deepEqual(outcomes(await again.recover()), new Map([[p.key, "attached"], [q.key, "lost"]]));
      assert.equal(gate(q.key), undefined, "a lost device's gate is closed");
      assert.equal(gate(p.key), "net1\n");
      // Closed before the device leaves the pod.
      const seen: (string | undefined)[] = [];
      const detaching = startAgent({ netlink, store, gateDir, beforeStep: (step) => { if (step === "move-out") seen.push(gate(p.key)); } });
      await detaching.detach([p.key, q.key]);
      assert.deepEqual(seen, [undefined]);
      assert.deepEqual(readdirSync(gateDir), []);
    });
  });

  const detachSteps: Step[] = ["move-out", "restore-link", "restore-addresses", "restore-up", "restore-routes", "forget"];
  for (const step of detachSteps) {
    it(`recovers a detach killed before step ${step}: restores the host exactly`, async () => {
      await withSetup(async (nic, netns) => {
        const hostBefore = hostSnapshot(nic);
        const p = plan(nic, netns, "net1", 5);
        await startAgent({ netlink, store }).attach([p]);
        const crashing = startAgent({ netlink, store, beforeStep: crashAt(step) });
        await assert.rejects(crashing.detach([p.key]), InjectedCrash);
        const restarted = startAgent({ netlink, store });
        assert.deepEqual(outcomes(await restarted.recover()), new Map([[p.key, "restored"]]));
        assert.deepEqual(hostSnapshot(nic), hostBefore);
        assert.deepEqual(await restarted.attachments(), []);
      });
    });
  }

  it("restores on recovery an attach killed mid-way whose pod is gone", async () => {
    await withSetup(async (nic, netns) => {
      const hostBefore = hostSnapshot(nic);
      const p = plan(nic, netns, "net1", 5);
      await assert.rejects(startAgent({ netlink, store, beforeStep: crashAt("move") }).attach([p]), InjectedCrash);
      netns.remove();
      assert.deepEqual(outcomes(await startAgent({ netlink, store }).recover()), new Map([[p.key, "restored"]]));
      assert.deepEqual(hostSnapshot(nic), hostBefore);
    });
  });
});

describe("recovery never stops at one attachment", () => {
  it("records a device that vanished from its live pod as lost without throwing, serves the rest, and forgets it when the pod goes (veth: dies with its peer, and with the namespace)", async () => {
    await withDevices(3, 20, async ([vanishing = "", kept = "", later = ""], netns) => {
      const engine = startAgent({ netlink, store });
      const lost = plan(vanishing, netns, "net1", 20);
      const healthy = plan(kept, netns, "net2", 21);
      await engine.attach([lost, healthy]);
      // The hot-unplug stand-in: deleting a veth's host-side peer destroys its end in the pod too.
      ip("link", "del", `${vanishing.slice(0, -1)}b`);
      const restarted = startAgent({ netlink, store });
      const results = await restarted.recover();
      assert.deepEqual(outcomes(results), new Map([[lost.key, "lost"], [healthy.key, "attached"]]));
      assert.match(results.get(lost.key)?.error ?? "", new RegExp(`attachment ${lost.key}, device ${vanishing}, step move: device ${vanishing} is neither in pod ${netns.path} nor on the host`));
      assert.equal(results.get(healthy.key)?.attached?.podName, "net2");
      assertAttached(netns, "net2", 21);
      // Journaled so the claim can say so, but not attached: nothing counts it as done.
      assert.deepEqual((await restarted.attachments()).sort(), [lost.key, healthy.key].sort());
      assert.deepEqual(await restarted.attached(), [healthy.key]);
      // Lost stays lost; the healthy one, settled by this engine now, is only looked for in its pod.
      assert.deepEqual(outcomes(await restarted.recover()), new Map([[lost.key, "lost"]]));
      // The engine keeps attaching and restoring other devices.
      const other = makeNetns();
      try {
        const laterBefore = hostSnapshot(later);
        const next = plan(later, other, "net1", 22);
        await restarted.attach([next]);
        assertAttached(other, "net1", 22);
        assert.deepEqual(await restarted.detach([next.key]), new Map([[next.key, "restored"]]));
        assert.deepEqual(hostSnapshot(later), laterBefore);
      } finally {
        other.remove();
      }
      // The runtime removes the namespace's path (CRI-O does before StopPodSandbox); the agent
      // holds the namespace, so the kept device stays in it, and both stay journaled.
      netns.remove();
      assert.deepEqual(outcomes(await restarted.recover()), new Map([[lost.key, "lost"]]));
      // The runtime says the pod is gone (StopPodSandbox, or a Synchronize without it): the agent detaches.
      assert.deepEqual(await restarted.detach([lost.key, healthy.key]), new Map([[lost.key, "gone"], [healthy.key, "restored"]]));
      assert.deepEqual(await restarted.attachments(), []);
    });
  });

  it("recognizes a device in its live pod by identity when the recorded namespace path is gone, and restores it when the pod goes", async () => {
    await withSetup(async (nic, netns) => {
      const hostBefore = hostSnapshot(nic);
      const p = plan(nic, netns, "net1", 7);
      await startAgent({ netlink, store }).attach([p]);
      // The pod's namespace lives on under another path (a replaced sandbox, a runtime that moved it):
      // the recorded path is gone, the device is not on the host.
      const moved = bindNetns(netns);
      try {
        netns.remove();
        const restarted = startAgent({ netlink, store });
        assert.deepEqual(outcomes(await restarted.recover()), new Map([[p.key, "unplaced"]]), "not forgotten: the pod may live elsewhere");
        assert.deepEqual(outcomes(await restarted.retarget(new Map([[p.key, moved.path]]))), new Map([[p.key, "attached"]]));
        assertAttached(moved, "net1", 7);
        assert.deepEqual(await restarted.attached(), [p.key]);
        assert.deepEqual(outcomes(await restarted.retarget(new Map([[p.key, moved.path]]))), new Map(), "a record whose namespace exists is left alone");
        assert.deepEqual(await restarted.detach([p.key]), new Map([[p.key, "restored"]]));
        assert.deepEqual(hostSnapshot(nic), hostBefore);
      } finally {
        moved.remove();
      }
    });
  });

  it("keeps a device in its pod's live sandbox when a sandbox it replaced stops or is removed, and restores it with its own", async () => {
    await withSetup(async (nic, netns) => {
      const hostBefore = hostSnapshot(nic);
      const engine = startAgent({ netlink, store });
      const p = plan(nic, netns, "net1", 7);
      await engine.attach([p]);
      // StopPodSandbox of the replaced sandbox names its own namespace; RemovePodSandbox, once it is gone, none.
      assert.deepEqual(await engine.detach([p.key], { sandbox: { netns: "/var/run/netns/nctest-replaced" } }), new Map([[p.key, "kept"]]));
      assert.deepEqual(await engine.detach([p.key], { sandbox: { netns: undefined } }), new Map([[p.key, "kept"]]));
      assertAttached(netns, "net1", 7);
      assert.deepEqual(await engine.detach([p.key], { sandbox: { netns: netns.path } }), new Map([[p.key, "restored"]]));
      assert.deepEqual(hostSnapshot(nic), hostBefore);
    });
  });

  it("records a device as lost when the pod's new namespace does not have it either (veth: died with the old one)", async () => {
    await withSetup(async (nic, netns) => {
      const p = plan(nic, netns, "net1", 7);
      await startAgent({ netlink, store }).attach([p]);
      netns.remove();
      const replacement = makeNetns();
      try {
        const restarted = startAgent({ netlink, store });
        assert.deepEqual(outcomes(await restarted.recover()), new Map([[p.key, "unplaced"]]));
        const results = await restarted.retarget(new Map([[p.key, replacement.path]]));
        assert.deepEqual(outcomes(results), new Map([[p.key, "lost"]]));
        assert.match(results.get(p.key)?.error ?? "", new RegExp(`neither in pod ${replacement.path} nor on the host`));
        assert.deepEqual(await restarted.detach([p.key]), new Map([[p.key, "gone"]]));
      } finally {
        replacement.remove();
      }
    });
  });

  it("leaves an attachment it settled itself as the workload keeps it (an interface set down stays down); a restarted agent runs its steps", async () => {
    await withSetup(async (nic, netns) => {
      const engine = startAgent({ netlink, store });
      const p = plan(nic, netns, "net1", 7);
      await engine.attach([p]);
      ip("-n", netns.name, "link", "set", "net1", "down");
      assert.deepEqual(outcomes(await engine.recover()), new Map());
      assert.equal(podHas(netns, ["link", "show", "dev", "net1"], ",UP"), false, "still down: recovery did not redo the attach");
      // A new agent cannot know what happened while none ran: it runs the steps toward the plan.
      assert.deepEqual(outcomes(await startAgent({ netlink, store }).recover()), new Map([[p.key, "attached"]]));
      assertAttached(netns, "net1", 7);
      assert.deepEqual(await engine.detach([p.key]), new Map([[p.key, "restored"]]));
    });
  });

  it("keeps a lost device that comes back on the host there while its pod lives, and restores it when the pod stops (a NIC plugged in again)", async () => {
    await withSetup(async (nic, netns) => {
      const engine = startAgent({ netlink, store });
      const p = plan(nic, netns, "net1", 7);
      const hostMac = ip("-json", "link", "show", "dev", nic).match(/"address":"([0-9a-f:]+)"/)?.[1] ?? "";
      await engine.attach([p]);
      ip("link", "del", `${nic.slice(0, -1)}b`);
      assert.deepEqual(outcomes(await engine.recover()), new Map([[p.key, "lost"]]));
      // The same device again, as identity sees a veth: same kind, same host MAC, same name.
      ip("link", "add", nic, "address", hostMac, "type", "veth", "peer", "name", `${nic.slice(0, -1)}b`);
      assert.deepEqual(outcomes(await engine.recover()), new Map([[p.key, "lost"]]));
      assert.doesNotThrow(() => ip("link", "show", "dev", nic), "not moved into the running pod behind its back");
      assert.equal(podHas(netns, ["link", "show"], "net1"), false);
      // The pod stops (NRI's StopPodSandbox): the device gets its host state back and the record goes.
      assert.deepEqual(await engine.detach([p.key]), new Map([[p.key, "restored"]]));
      assert.ok(ip("addr", "show", "dev", nic).includes("198.51.100.7/24"));
      assert.deepEqual(await engine.attachments(), []);
    });
  });

  it("reports an attachment whose recovery fails as failed, keeps its record for the next run, and recovers the others", async () => {
    await withDevices(2, 24, async ([broken = "", fine = ""], netns) => {
      const hostBefore = hostSnapshot(broken);
      // The kernel refuses addr_gen_mode 9 (EINVAL); the crash before "configure" lets the first attempt move the device only.
      const refused = plan(broken, netns, "net1", 24, { sysctls: { "net.ipv6.conf.net1.addr_gen_mode": "9" } });
      const healthy = plan(fine, netns, "net2", 25);
      await assert.rejects(startAgent({ netlink, store, beforeStep: crashAt("configure") }).attach([refused, healthy]), InjectedCrash);
      const restarted = startAgent({ netlink, store });
      const results = await restarted.recover();
      assert.deepEqual(outcomes(results), new Map([[refused.key, "failed"], [healthy.key, "attached"]]));
      assert.match(results.get(refused.key)?.error ?? "", new RegExp(`attachment ${refused.key}, device ${broken}, step configure: .*addr_gen_mode`));
      assertAttached(netns, "net2", 25);
      assert.deepEqual((await restarted.attachments()).sort(), [refused.key, healthy.key].sort());
      assert.deepEqual(await restarted.detach([refused.key, healthy.key]), new Map([[refused.key, "restored"], [healthy.key, "restored"]]));
      assert.deepEqual(hostSnapshot(broken), hostBefore);
    });
  });

  it("fails an attach whose roll-back fails too with both errors, keeps the record, and restores the device on the next recovery", async () => {
    await withSetup(async (nic, netns) => {
      const hostBefore = hostSnapshot(nic);
      // A link that takes the device's host name while it is in the pod makes the kernel refuse the move back (EEXIST).
      const squatter = (step: Step): void => {
        if (step === "move-out") ip("link", "add", nic, "type", "veth", "peer", "name", `${nic}q`);
      };
      const engine = startAgent({ netlink, store, beforeStep: squatter });
      // The gateway is on no attached subnet: the attach fails at "routes" with ENETUNREACH.
      const p = plan(nic, netns, "net1", 7, { routes: [{ destination: "198.51.100.0/24", gateway: "192.168.250.1" }] });
      await assert.rejects(engine.attach([p]), (err: unknown) => {
        assert.ok(err instanceof EngineError);
        assert.equal(err.code, "ENGINE_ROLLBACK_FAILED");
        assert.equal(err.step, "routes");
        assert.match(err.message, /ENETUNREACH/);
        assert.match(err.message, new RegExp(`restoring to the host failed too \\(attachment ${p.key}, device ${nic}, step move-out: .*EEXIST`));
        return true;
      });
      assert.deepEqual(await engine.attachments(), [p.key], "the journal keeps the device");
      assert.deepEqual(await engine.attached(), []);
      ip("link", "del", nic);
      assert.deepEqual(outcomes(await startAgent({ netlink, store }).recover()), new Map([[p.key, "restored"]]));
      assert.deepEqual(hostSnapshot(nic), hostBefore);
    });
  });
});

describe("attach engine on its own thread", () => {
  let journalDir: { dir: string; remove(): Promise<void> };
  let thread: EngineThread;

  before(async () => {
    journalDir = await tempStoreDir();
    thread = new EngineThread({ dir: journalDir.dir });
    await thread.start();
  });

  after(async () => {
    await thread.close();
    await journalDir.remove();
  });

  it("attaches and restores the host exactly", async () => {
    await withSetup(async (nic, netns) => {
      const hostBefore = hostSnapshot(nic);
      const p = plan(nic, netns, "net1", 5);
      const [result] = await thread.attach([p]);
      assert.equal(result?.podName, "net1");
      assertAttached(netns, "net1", 5);
      assert.deepEqual(await thread.attached(), [p.key]);
      assert.deepEqual(await thread.takeOpTimes(), [], "a thread not asked to record op times keeps none");
      assert.deepEqual(await thread.detach([p.key]), new Map([[p.key, "restored"]]));
      assert.deepEqual(hostSnapshot(nic), hostBefore);
      assert.deepEqual(await thread.attachments(), []);
    });
  });

  it("keeps the times of an attach's batches until asked, then forgets them", async () => {
    const timed = new EngineThread({ dir: journalDir.dir, recordOpTimes: true });
    try {
      await withSetup(async (nic, netns) => {
        const p = plan(nic, netns, "net1", 5);
        await timed.attach([p]);
        const batches = await timed.takeOpTimes();
        for (const { ops, opMs } of batches) assert.equal(opMs.length, ops.length);
        const moves = batches.map(({ ops }) => ops.some(({ op }) => op.op === "setLink" && op.update.netns !== undefined));
        assert.deepEqual(moves, [false, true]);
        assert.deepEqual(await timed.takeOpTimes(), []);
        await timed.detach([p.key]);
        assert.ok((await timed.takeOpTimes()).length > 0);
      });
    } finally {
      await timed.close();
    }
  });

  it("fails begin with the engine's own error when a check fails, and moves nothing", async () => {
    await withSetup(async (nic, netns) => {
      ip("-n", netns.name, "link", "add", "net1", "type", "veth", "peer", "name", "nctest-tpeer");
      const hostBefore = hostSnapshot(nic);
      const p = plan(nic, netns, "net1", 5);
      await assert.rejects(thread.begin([p]), (err: unknown) => {
        assert.ok(err instanceof EngineError);
        assert.equal(err.code, "ENGINE_NAME_COLLISION");
        assert.equal(err.attachment, p.key);
        assert.equal(err.step, "check-names");
        return true;
      });
      assert.deepEqual(hostSnapshot(nic), hostBefore);
    });
  });

  it("fails done with the step, the device and the kernel's errno, and rolls back", async () => {
    await withSetup(async (nic, netns) => {
      const hostBefore = hostSnapshot(nic);
      const p = plan(nic, netns, "net1", 5, { routes: [{ destination: "198.51.100.0/24", gateway: "192.168.250.1" }] });
      const { done } = await thread.begin([p]);
      await assert.rejects(done, (err: unknown) => {
        assert.ok(err instanceof EngineError);
        assert.equal(err.code, "ENGINE_STEP_FAILED");
        assert.equal(err.step, "routes");
        assert.equal(err.device, nic);
        assert.ok(err.cause instanceof NetlinkError);
        assert.equal(err.cause.errnoName, "ENETUNREACH");
        return true;
      });
      assert.deepEqual(hostSnapshot(nic), hostBefore);
      assert.deepEqual(await thread.attachments(), []);
    });
  });

  it("runs the agent's other netlink batches, and returns their errors as netlink errors", async () => {
    await withSetup(async (nic, netns) => {
      ip("-n", netns.name, "link", "add", "nctest-bat0", "type", "veth", "peer", "name", "nctest-bat1");
      const [podLinks] = await thread.batch(netns.path, [{ op: "listLinks" }] as const);
      assert.deepEqual(podLinks.map((l) => l.name).sort(), ["lo", "nctest-bat0", "nctest-bat1"]);
      await assert.rejects(thread.batch(undefined, [{ op: "getLink", key: { name: nic } }, { op: "deleteLink", index: 999_999, device: "nctest-none" }] as const), (err: unknown) => {
        assert.ok(err instanceof NetlinkError);
        assert.equal(err.errnoName, "ENODEV");
        assert.equal(err.opIndex, 1);
        return true;
      });
    });
  });

  it("reports its thread's own heap while the thread runs, and none once it stopped", async () => {
    const own = new EngineThread({ dir: journalDir.dir });
    assert.equal(await own.heapStatistics(), undefined, "no thread before start");
    await own.start();
    const heap = await own.heapStatistics();
    assert.ok(heap !== undefined && heap.used_heap_size > 0 && heap.total_heap_size >= heap.used_heap_size, `a heap of its own: ${JSON.stringify(heap)}`);
    await own.close();
    assert.equal(await own.heapStatistics(), undefined, "none once closed");
  });

  it("fails start when its thread cannot open the journal, naming the directory", async () => {
    const broken = new EngineThread({ dir: "/proc/version/netclaim" });
    try {
      await assert.rejects(broken.start(), /\/proc\/version\/netclaim/);
    } finally {
      await broken.close();
    }
  });

  it("fails the calls in flight when its thread stops, and carries on from the journal in a new one", async () => {
    await withSetup(async (nic, netns) => {
      const hostBefore = hostSnapshot(nic);
      const p = plan(nic, netns, "net1", 5);
      await thread.attach([p]);
      const local = new EngineThread({ dir: journalDir.dir });
      // Asked before the new thread has even loaded: it cannot have answered.
      const inFlight = local.attachments();
      await local.close();
      await assert.rejects(inFlight, (err: unknown) => err instanceof EngineError && err.code === "ENGINE_THREAD" && err.step === "attachments");
      // The next call starts a fresh thread, which finds the attachment in the journal and restores it.
      assert.deepEqual(await local.detach([p.key]), new Map([[p.key, "restored"]]));
      await local.close();
      assert.deepEqual(hostSnapshot(nic), hostBefore);
      assert.deepEqual(await thread.attachments(), []);
    });
  });
});

/** The namespace of `netns` bind-mounted at a second path, which outlives the first. */
function bindNetns(netns: Netns): Netns {
  const name = `${netns.name}m`;
  const path = `/var/run/netns/${name}`;
  execFileSync("touch", [path]);
  execFileSync("mount", ["--bind", netns.path, path]);
  return {
    name,
    path,
    remove: () => {
      tryIp("netns", "del", name);
    },
  };
}

/** Each attachment's recovery outcome, without the details. */
function outcomes(results: ReadonlyMap<string, RecoveryResult>): Map<string, RecoveryOutcome> {
  return new Map([...results].map(([key, result]) => [key, result.outcome]));
}

function crashAt(target: Step): (step: Step) => void {
  return (step) => {
    if (step === target) throw new InjectedCrash(step);
  };
}
