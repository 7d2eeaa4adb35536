import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { pino } from "pino";
import type { DeviceReport, SnapshotListener } from "../inventory/index.ts";
import { StateStore } from "../store/index.ts";
import { loadInventoryMemory, rememberInventory } from "./inventory-memory.ts";

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function report(name: string, mtu: number): DeviceReport {
  return {
    name,
    publish: true,
    reason: "selected",
    attached: false,
    device: { ifName: name, ifIndex: 7, mtu, linkType: "ether", virtual: false, lowers: [], devPort: 0 },
    attributes: { mtu: { int: mtu } },
  } as unknown as DeviceReport;
}

/** An inventory whose known devices and their revision the test sets, and whose snapshots it announces. */
class FakeInventory {
  reports: DeviceReport[] = [report("nic0", 1500)];
  knownRevision = 1;
  readonly #listeners = new Set<SnapshotListener>();
  known(): DeviceReport[] {
    return this.reports;
  }
  subscribe(listener: SnapshotListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  announce(): void {
    for (const listener of this.#listeners) listener({ reports: this.reports });
  }
}

describe("rememberInventory", () => {
  it("saves the known devices at the start and again only when a snapshot changed them", async () => {
    const dir = await mkdtemp(join(tmpdir(), "netclaim-invmem-"));
    dirs.push(dir);
    const store = await StateStore.open(dir);
    const logger = pino({ level: "silent" });
    const inventory = new FakeInventory();
    const memory = rememberInventory(inventory, store, logger);
    await memory.flush();
    const mtu = async (): Promise<unknown> => (await loadInventoryMemory(store, logger))[0]?.device.mtu;
    assert.equal(await mtu(), 1500);

    // A snapshot that left known() as it was (a device moved into a pod) writes nothing.
    inventory.reports = [report("nic0", 9000)];
    inventory.announce();
    await memory.flush();
    assert.equal(await mtu(), 1500);

    inventory.knownRevision = 2;
    inventory.announce();
    await memory.flush();
    assert.equal(await mtu(), 9000);

    // A write that failed is made again at the next snapshot, even one that changed nothing.
    const stateDir = join(dir, "inventory");
    await rm(stateDir, { recursive: true });
    await writeFile(stateDir, "not a directory");
    inventory.knownRevision = 3;
    inventory.reports = [report("nic0", 1400)];
    inventory.announce();
    await memory.flush();
    await rm(stateDir);
    await mkdir(stateDir);
    inventory.announce();
    await memory.flush();
    assert.equal(await mtu(), 1400);
    memory.stop();
  });
});
