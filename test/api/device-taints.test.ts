/**
 * Device taints in ResourceSlices against a real kube-apiserver, written with
 * the agent's own credentials. From 1.36 the API server keeps them (beta, GA
 * in 1.37): a taint appears and goes with the device's health, keeps the
 * time the server stamped it with across rewrites, and costs no write at
 * steady state. Before 1.36 the server drops the field (its DRADeviceTaints
 * gate is off): the publisher notices once and publishes without taints
 * rather than rewriting forever. Which one a run sees depends on its
 * release (the api and api-newest suites).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { DeviceReport, InventorySnapshot } from "../../src/inventory/index.ts";
import type { DeviceTaint, KubeClient } from "../../src/kube/index.ts";
import { SlicePublisher, type DeviceTaintSource, type SlicePlan } from "../../src/slices/index.ts";
import { minorOf } from "../fixtures/k8s-versions.ts";
import { agentClient, cluster, createFakeNode, nodeSlices, waitFor, type Cluster } from "./harness.ts";

const NODE = "api-taints";
const KEY = "netclaim.dev/unhealthy";

function report(name: string): DeviceReport {
  return {
    name,
    device: { ifName: name, ifIndex: 7, linkType: "ether", virtual: false, lowers: [], devPort: 0 },
    attributes: { local: { ifName: name }, standard: {} },
    publish: true,
    reason: "selected",
    attached: false,
  };
}

/** An inventory and a taint source the test sets, notifying the publisher as the agent's do. */
class Controlled<T> {
  #value: T;
  readonly #listeners = new Set<(value: T) => void>();
  constructor(value: T) {
    this.#value = value;
  }
  current(): T {
    return this.#value;
  }
  set(value: T): void {
    this.#value = value;
    for (const listener of [...this.#listeners]) listener(value);
  }
  subscribe(listener: (value: T) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

let c: Cluster;
let client: KubeClient;

before(async () => {
  c = await cluster();
  await createFakeNode(c, NODE);
  client = await agentClient(c, NODE);
});

after(() => {
  client.close();
});

async function deviceTaints(device: string): Promise<DeviceTaint[]> {
  const slices = await nodeSlices(c, NODE);
  return slices.flatMap((s) => s.spec.devices ?? []).find((d) => d.name === device)?.taints ?? [];
}

describe("device taints in the ResourceSlice", () => {
  it("publishes a device's taints where the API server keeps them, and never loops where it drops them", async () => {
    const devices = new Controlled<InventorySnapshot>({ reports: [report("dev-a"), report("dev-b")] });
    const taints = new Controlled<ReadonlyMap<string, readonly DeviceTaint[]>>(new Map());
    const taintSource: DeviceTaintSource = taints;
    const errors: unknown[] = [];
    const writes: SlicePlan[] = [];
    const publisher = new SlicePublisher({
      client,
      driverName: "netclaim.dev",
      nodeName: NODE,
      devices,
      taints: taintSource,
      onError: (err) => errors.push(err),
      onPublished: (plan) => writes.push(plan),
    });
    await publisher.start();
    try {
      assert.equal(writes.length, 1, "the first publication");
      const linkDown: DeviceTaint = { key: KEY, value: "LinkDown", effect: "NoSchedule" };
      taints.set(new Map([["dev-a", [linkDown]]]));

      if (minorOf(c.version) >= 36) {
        const [stamped] = await waitFor("dev-a's taint", async () => {
          const found = await deviceTaints("dev-a");
          return found.length > 0 ? found : undefined;
        });
        assert.deepEqual({ ...stamped, timeAdded: undefined }, { ...linkDown, timeAdded: undefined });
        assert.ok(stamped?.timeAdded, "the API server stamps the time");
        assert.deepEqual(await deviceTaints("dev-b"), []);

        // Another change rewrites the slice: the taint keeps its time, and steady state writes nothing.
        devices.set({ reports: [report("dev-a"), report("dev-b"), report("dev-c")] });
        await waitFor("dev-c published", async () => ((await nodeSlices(c, NODE)).some((s) => s.spec.devices?.some((d) => d.name === "dev-c")) ? true : undefined));
        assert.equal((await deviceTaints("dev-a"))[0]?.timeAdded, stamped.timeAdded);
        const settled = writes.length;
        await new Promise((resolve) => setTimeout(resolve, 500));
        assert.equal(writes.length, settled, "no writes at steady state");

        taints.set(new Map());
        await waitFor("dev-a's taint removed", async () => ((await deviceTaints("dev-a")).length === 0 ? true : undefined));
        assert.deepEqual(errors, []);
      } else {
        const dropped = await waitFor("the publisher to notice the dropped taints", () =>
          Promise.resolve(errors.find((e) => (e as { code?: string }).code === "SLICE_TAINTS_DROPPED")),
        );
        assert.match((dropped as Error).message, /DRADeviceTaints feature gate is off/);
        const after = writes.length;
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        assert.ok(writes.length - after <= 1, `a write loop: ${writes.length - after} writes in 1 s after the taints were dropped`);
        assert.deepEqual(await deviceTaints("dev-a"), []);
        assert.equal(errors.length, 1, "said once");
      }
    } finally {
      await publisher.stop();
    }
  });
});
