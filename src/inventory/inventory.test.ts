import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Inventory, type AttachedDevices, type LinkEventSource, type Timers } from "./inventory.ts";
import { devicePolicySchema } from "./policy.ts";
import type { InventorySnapshot } from "./scan.ts";
import { virtioNode } from "../../test/fixtures/nodes.ts";
import { fixtureLinkKinds, writeSysfsFixture } from "../../test/fixtures/sysfs-tree.ts";

/** Timers the test fires by hand. */
class ManualTimers implements Timers {
  pending = new Map<number, { fn: () => void; ms: number }>();
  #next = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#next;
    this.pending.set(id, { fn, ms });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  /** Fires every timer due after `ms` (debounce), not the long resync. */
  fire(ms: number): number {
    let fired = 0;
    for (const [id, timer] of [...this.pending]) {
      if (timer.ms !== ms) continue;
      this.pending.delete(id);
      timer.fn();
      fired++;
    }
    return fired;
  }
}

class ManualLinks implements LinkEventSource {
  onChange: ((links?: readonly string[]) => void) | undefined;
  start(onChange: (links?: readonly string[]) => void): void {
    this.onChange = onChange;
  }
  stop(): void {
    this.onChange = undefined;
  }
}

const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

/** The virtio node's sysfs tree in a fresh directory, removed after the tests. */
async function virtioTree(): Promise<{ root: string; fixture: ReturnType<typeof virtioNode> }> {
  const root = await mkdtemp("/tmp/nc-unit-");
  roots.push(root);
  const fixture = virtioNode();
  await writeSysfsFixture(root, fixture);
  return { root, fixture };
}

async function settle(inventory: Inventory, scans: number): Promise<void> {
  while (inventory.scans < scans) await new Promise((resolve) => setImmediate(resolve));
}

/** The host's sysfs at `root` without `eth1` (it moved into a pod), then the scan that sees it so, the `scans`th. */
async function rescanWithoutEth1(inventory: Inventory, timers: ManualTimers, root: string, fixture: ReturnType<typeof virtioNode>, scans: number): Promise<void> {
  await rm(root, { recursive: true });
  await writeSysfsFixture(root, { ...fixture, pci: fixture.pci.filter((f) => f.netdevs[0]?.name !== "eth1") });
  inventory.requestRescan();
  timers.fire(10);
  await settle(inventory, scans);
}

/** An agent's view of the attach journal the node's agents share: what it last read (`known`), read again from `journaled` when asked. */
class JournalView implements AttachedDevices {
  readonly journaled = new Set<string>();
  known: ReadonlySet<string> = new Set();

  attachedDevices(): ReadonlySet<string> {
    return this.known;
  }

  refreshAttached(): Promise<void> {
    this.known = new Set(this.journaled);
    return Promise.resolve();
  }
}

function journalInventory(root: string, fixture: ReturnType<typeof virtioNode>, timers: ManualTimers, view: JournalView): Inventory {
  return new Inventory({ root, policy: devicePolicySchema.parse(undefined), linkKinds: fixtureLinkKinds(fixture), timers, debounceMs: 10, attached: view });
}

describe("Inventory", () => {
  it("coalesces a burst of link events into one scan and notifies only on change", async () => {
    const root = await mkdtemp("/tmp/nc-unit-");
    roots.push(root);
    await writeSysfsFixture(root, virtioNode());
    const timers = new ManualTimers();
    const links = new ManualLinks();
    const inventory = new Inventory({ root, policy: devicePolicySchema.parse(undefined), linkEvents: links, timers, debounceMs: 10, resyncMs: 60_000 });
    const snapshots: InventorySnapshot[] = [];
    inventory.subscribe((s) => snapshots.push(s));
    await inventory.start();
    assert.equal(inventory.scans, 1);
    assert.equal(snapshots.length, 1);

    for (let i = 0; i < 5; i++) links.onChange?.();
    assert.equal(timers.fire(10), 1, "five events, one debounced scan");
    await settle(inventory, 2);
    assert.equal(snapshots.length, 1, "an unchanged scan notifies nobody");

    inventory.requestRescan();
    inventory.requestRescan();
    assert.equal(timers.fire(10), 1);
    await settle(inventory, 3);
    assert.equal(snapshots.length, 1);
    await inventory.stop();
    assert.equal(links.onChange, undefined);
    inventory.requestRescan();
    assert.equal(timers.fire(10), 0, "a stopped inventory schedules nothing");
  });

  it("reads only the links that events named, and everything when events were lost, after a failed scan or on request", async () => {
    const { root, fixture } = await virtioTree();
    const timers = new ManualTimers();
    const links = new ManualLinks();
    let kindsFail = false;
    const fixtureKinds = fixtureLinkKinds(fixture);
    const errors: unknown[] = [];
    const inventory = new Inventory({
      root,
      policy: devicePolicySchema.parse(undefined),
      linkKinds: () => (kindsFail ? Promise.reject(new Error("netlink is down")) : fixtureKinds()),
      linkEvents: links,
      timers,
      debounceMs: 10,
      onError: (err) => errors.push(err),
    });
    await inventory.start();
    let scans = 1;
    const scan = async (trigger: () => void): Promise<void> => {
      trigger();
      timers.fire(10);
      await settle(inventory, ++scans);
    };
    const mtus = async (eth1: number, storage: number): Promise<void> => {
      await writeFile(join(root, "sys/class/net/eth1/mtu"), `${eth1}\n`);
      await writeFile(join(root, "sys/class/net/Storage_Net/mtu"), `${storage}\n`);
    };
    const mtu = (ifName: string): number | undefined => inventory.current().reports.find((r) => r.device.ifName === ifName)?.device.mtu;

    await mtus(9000, 1400);
    await scan(() => links.onChange?.(["eth1"]));
    assert.deepEqual([mtu("eth1"), mtu("Storage_Net")], [9000, 9000], "only eth1 was named");
    await scan(() => links.onChange?.());
    assert.deepEqual([mtu("eth1"), mtu("Storage_Net")], [9000, 1400], "events were lost: everything is read");

    await mtus(1280, 1300);
    await scan(() => { inventory.requestRescan([]); });
    assert.deepEqual([mtu("eth1"), mtu("Storage_Net")], [9000, 1400], "no link named");
    kindsFail = true;
    links.onChange?.(["eth1"]);
    timers.fire(10);
    while (errors.length === 0) await new Promise((resolve) => setImmediate(resolve));
    kindsFail = false;
    await scan(() => { inventory.requestRescan([]); });
    assert.deepEqual([mtu("eth1"), mtu("Storage_Net")], [1280, 1300], "after a failed scan everything is read");

    await mtus(1500, 1500);
    await scan(() => { inventory.requestRescan(); });
    assert.deepEqual([mtu("eth1"), mtu("Storage_Net")], [1500, 1500], "a request without links reads everything");
    await inventory.stop();
  });

  it("after a scan, reads only the links events named while it ran", async () => {
    const { root, fixture } = await virtioTree();
    const timers = new ManualTimers();
    const links = new ManualLinks();
    const fixtureKinds = fixtureLinkKinds(fixture);
    const kindsWait: { until?: Promise<void> } = {};
    const inventory = new Inventory({
      root,
      policy: devicePolicySchema.parse(undefined),
      linkKinds: async () => {
        await kindsWait.until;
        return fixtureKinds();
      },
      linkEvents: links,
      timers,
      debounceMs: 10,
    });
    await inventory.start();
    await writeFile(join(root, "sys/class/net/eth1/mtu"), "9000\n");
    await writeFile(join(root, "sys/class/net/Storage_Net/mtu"), "1400\n");
    let release: () => void = () => undefined;
    kindsWait.until = new Promise((resolve) => {
      release = resolve;
    });
    links.onChange?.(["dummy0"]);
    timers.fire(10);
    // The scan waits for the link kinds; an event arrives meanwhile.
    links.onChange?.(["eth1"]);
    timers.fire(10);
    release();
    await settle(inventory, 2);
    while (timers.fire(10) === 0) await new Promise((resolve) => setImmediate(resolve));
    await settle(inventory, 3);
    const mtu = (ifName: string): number | undefined => inventory.current().reports.find((r) => r.device.ifName === ifName)?.device.mtu;
    assert.deepEqual([mtu("eth1"), mtu("Storage_Net")], [9000, 9000]);
    await inventory.stop();
  });

  it("reports a device that appeared, and keeps attached devices published", async () => {
    const root = await mkdtemp("/tmp/nc-unit-");
    roots.push(root);
    const fixture = virtioNode();
    await writeSysfsFixture(root, { ...fixture, pci: fixture.pci.filter((f) => f.netdevs[0]?.name !== "eth1") });
    const timers = new ManualTimers();
    const attached = new Set<string>();
    const inventory = new Inventory({
      root,
      policy: devicePolicySchema.parse(undefined),
      linkKinds: fixtureLinkKinds(fixture),
      timers,
      debounceMs: 10,
      attached: { attachedDevices: () => attached },
    });
    await inventory.start();
    const names = (): string[] => inventory.current().reports.filter((r) => r.publish).map((r) => r.name);
    assert.deepEqual(names(), ["net-kn2g64tbm5sv6ttfoq"], "the link kinds reach the guard: dummy0 is a dummy");

    await rm(root, { recursive: true });
    await writeSysfsFixture(root, fixture);
    inventory.requestRescan();
    timers.fire(10);
    await settle(inventory, 2);
    assert.deepEqual(names(), ["net-kn2g64tbm5sv6ttfoq", "pci-0000-00-04-0"]);

    // eth1 moves into a pod: its netdev leaves the host, its report stays.
    attached.add("pci-0000-00-04-0");
    await rescanWithoutEth1(inventory, timers, root, fixture, 3);
    assert.deepEqual(names(), ["net-kn2g64tbm5sv6ttfoq", "pci-0000-00-04-0"]);
    assert.equal(inventory.current().reports.find((r) => r.name === "pci-0000-00-04-0")?.attached, true);
    await inventory.stop();
  });

  it("counts a change of the known devices, not a device moving into a pod", async () => {
    const { root, fixture } = await virtioTree();
    const timers = new ManualTimers();
    const attached = new Set<string>();
    const inventory = new Inventory({ root, policy: devicePolicySchema.parse(undefined), linkKinds: fixtureLinkKinds(fixture), timers, debounceMs: 10, attached: { attachedDevices: () => attached } });
    const snapshots: InventorySnapshot[] = [];
    inventory.subscribe((snapshot) => snapshots.push(snapshot));
    await inventory.start();
    const first = inventory.knownRevision;
    const published = inventory.publishedRevision;

    attached.add("pci-0000-00-04-0");
    await rescanWithoutEth1(inventory, timers, root, fixture, 2);
    assert.equal(snapshots.length, 2, "a new snapshot: eth1 is now in a pod");
    assert.equal(inventory.knownRevision, first, "its known report is as it was");
    assert.equal(inventory.publishedRevision, published, "and it is published as it was");

    await writeFile(join(root, "sys/class/net/Storage_Net/mtu"), "1400\n");
    inventory.requestRescan(["Storage_Net"]);
    timers.fire(10);
    await settle(inventory, 3);
    assert.equal(inventory.knownRevision, first + 1);
    assert.equal(inventory.publishedRevision, published + 1);

    // eth1 leaves its pod and then the node: no longer published, though its known report stays.
    attached.delete("pci-0000-00-04-0");
    inventory.requestRescan([]);
    timers.fire(10);
    await settle(inventory, 4);
    assert.equal(inventory.knownRevision, first + 1);
    assert.equal(inventory.publishedRevision, published + 2);
    await inventory.stop();
  });

  it("reads which devices are in pods again before each scan, so a device another agent moved stays published", async () => {
    const { root, fixture } = await virtioTree();
    const timers = new ManualTimers();
    const view = new JournalView();
    const inventory = journalInventory(root, fixture, timers, view);
    await inventory.start();
    const names = (): string[] => inventory.current().reports.filter((r) => r.publish).map((r) => r.name);
    assert.deepEqual(names(), ["net-kn2g64tbm5sv6ttfoq", "pci-0000-00-04-0"]);

    // The other agent journals eth1's attach, then moves it: its netdev leaves this host.
    view.journaled.add("pci-0000-00-04-0");
    await rescanWithoutEth1(inventory, timers, root, fixture, 2);
    assert.deepEqual(names(), ["net-kn2g64tbm5sv6ttfoq", "pci-0000-00-04-0"], "never dropped, so the two agents publish the same slice");
    await inventory.stop();
  });

  it("keeps a device published that leaves its pod while the links are read: attached before the reads, on the host after them", async () => {
    const { root, fixture } = await virtioTree();
    const timers = new ManualTimers();
    const view = new JournalView();
    const inventory = journalInventory(root, fixture, timers, view);
    await inventory.start();
    const publishedRevision = inventory.publishedRevision;
    // eth1 is in a pod when the scan begins; its detach ends (journal record gone) before the
    // scan reads the journal, but after it read the links: in neither place, by those reads.
    view.known = new Set(["pci-0000-00-04-0"]);
    await rescanWithoutEth1(inventory, timers, root, fixture, 2);
    assert.equal(inventory.current().reports.find((r) => r.name === "pci-0000-00-04-0")?.publish, true, "still published");
    assert.equal(inventory.publishedRevision, publishedRevision, "so its slice is not written again");
    await inventory.stop();
  });

  it("keeps an attached device published after a scan missed it, and across a restart through `previous`", async () => {
    const root = await mkdtemp("/tmp/nc-unit-");
    roots.push(root);
    const fixture = virtioNode();
    const withoutEth1 = { ...fixture, pci: fixture.pci.filter((f) => f.netdevs[0]?.name !== "eth1") };
    await writeSysfsFixture(root, fixture);
    const timers = new ManualTimers();
    const attached = new Set<string>();
    const inventory = new Inventory({ root, policy: devicePolicySchema.parse(undefined), timers, debounceMs: 10, attached: { attachedDevices: () => attached } });
    await inventory.start();
    const names = (i: Inventory): string[] => i.current().reports.filter((r) => r.publish).map((r) => r.name);

    // The device moves before the agent marks it attached: one scan misses it...
    await rm(root, { recursive: true });
    await writeSysfsFixture(root, withoutEth1);
    inventory.requestRescan();
    timers.fire(10);
    await settle(inventory, 2);
    assert.ok(!names(inventory).includes("pci-0000-00-04-0"));
    // ...and once it is marked attached it comes back with its attributes.
    attached.add("pci-0000-00-04-0");
    inventory.requestRescan();
    timers.fire(10);
    await settle(inventory, 3);
    assert.ok(names(inventory).includes("pci-0000-00-04-0"));
    const saved = inventory.known();
    await inventory.stop();

    // A restarted agent that never saw the device on the host still publishes it.
    const restarted = new Inventory({ root, policy: devicePolicySchema.parse(undefined), timers, previous: saved, attached: { attachedDevices: () => attached } });
    await restarted.start();
    assert.deepEqual(
      restarted.current().reports.find((r) => r.name === "pci-0000-00-04-0")?.attributes,
      saved.find((r) => r.name === "pci-0000-00-04-0")?.attributes,
    );
    await restarted.stop();
  });
});
