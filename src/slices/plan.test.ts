import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planSlices } from "./plan.ts";
import type { PoolIdentity } from "./desired.ts";
import type { Device, DeviceCapacity, ResourceSlice } from "../kube/index.ts";

const pool: PoolIdentity = { driverName: "netclaim.dev", nodeName: "node-a", nodeUID: "uid-a" };
const devices = (n: number, tag = ""): Device[] =>
  Array.from({ length: n }, (_, i) => ({ name: `dev-${String(i).padStart(4, "0")}`, attributes: { "netclaim.dev/tag": { string: tag } } }));

/** What the API server would hold after applying a plan. */
function apply(observed: ResourceSlice[], plan: ReturnType<typeof planSlices>): ResourceSlice[] {
  const byName = new Map(observed.map((s) => [s.metadata.name, s]));
  let version = 100;
  for (const write of plan.writes) byName.set(write.metadata.name, { ...write, metadata: { ...write.metadata, resourceVersion: String(version++) } });
  for (const gone of plan.deletes) byName.delete(gone.name);
  return [...byName.values()];
}

describe("planSlices", () => {
  it("creates one slice for a small pool and then writes nothing", () => {
    const plan = planSlices(pool, devices(3), []);
    assert.equal(plan.writes.length, 1);
    const [slice] = plan.writes;
    assert.equal(slice!.metadata.resourceVersion, undefined);
    assert.deepEqual(slice!.spec.pool, { name: "node-a", generation: 0, resourceSliceCount: 1 });
    assert.deepEqual(slice!.metadata.ownerReferences, [{ apiVersion: "v1", kind: "Node", name: "node-a", uid: "uid-a", controller: true }]);
    const steady = planSlices(pool, devices(3), apply([], plan));
    assert.deepEqual(steady, { generation: 0, writes: [], deletes: [] });
  });

  it("publishes 300 devices as 3 slices of one new generation", () => {
    const plan = planSlices(pool, devices(300), []);
    assert.equal(plan.writes.length, 3);
    assert.deepEqual(plan.writes.map((s) => s.spec.pool), Array(3).fill({ name: "node-a", generation: 1, resourceSliceCount: 3 }));
    assert.deepEqual(planSlices(pool, devices(300), apply([], plan)).writes, []);
  });

  it("recreates only a deleted slice, at the same generation", () => {
    const state = apply([], planSlices(pool, devices(300), []));
    const missing = state.filter((s) => s.metadata.name !== "node-a-netclaim.dev-1");
    const plan = planSlices(pool, devices(300), missing);
    assert.deepEqual(plan.writes.map((s) => [s.metadata.name, s.spec.pool.generation, s.metadata.resourceVersion]), [["node-a-netclaim.dev-1", 1, undefined]]);
  });

  it("reverts an edited slice with its resourceVersion, and a change of owner", () => {
    const state = apply([], planSlices(pool, devices(3), []));
    const edited = state.map((s) => ({ ...s, spec: { ...s.spec, devices: devices(3, "edited") } }));
    const plan = planSlices(pool, devices(3), edited);
    assert.equal(plan.writes.length, 1);
    assert.equal(plan.writes[0]?.metadata.resourceVersion, state[0]?.metadata.resourceVersion);
    assert.deepEqual(plan.writes[0]?.spec.devices, devices(3));
    const disowned = state.map((s) => ({ ...s, metadata: { ...s.metadata, ownerReferences: [] } }));
    assert.equal(planSlices(pool, devices(3), disowned).writes.length, 1);
  });

  it("moves to a new generation when several slices change or the count shrinks", () => {
    const state = apply([], planSlices(pool, devices(300), []));
    const changed = planSlices(pool, devices(300, "new"), state);
    assert.equal(changed.generation, 2);
    assert.ok(changed.writes.every((s) => s.spec.pool.generation === 2 && s.metadata.resourceVersion !== undefined));
    const shrunk = planSlices(pool, devices(100), state);
    assert.equal(shrunk.generation, 2);
    assert.deepEqual(shrunk.writes.map((s) => s.spec.pool.resourceSliceCount), [1]);
    assert.deepEqual(shrunk.deletes.map((d) => d.name), ["node-a-netclaim.dev-1", "node-a-netclaim.dev-2"]);
    assert.deepEqual(planSlices(pool, devices(100), apply(state, shrunk)).writes, []);
  });

  it("removes slices of another pool name and repairs mixed generations", () => {
    const state = apply([], planSlices(pool, devices(3), []));
    const stray: ResourceSlice = { metadata: { name: "old", resourceVersion: "7" }, spec: { driver: "netclaim.dev", nodeName: "node-a", pool: { name: "renamed", generation: 4, resourceSliceCount: 1 } } };
    const plan = planSlices(pool, devices(3), [...state, stray]);
    assert.deepEqual(plan.deletes, [{ name: "old", resourceVersion: "7" }]);
    const mixed = apply([], planSlices(pool, devices(300), [])).map((s, i) => (i === 0 ? { ...s, spec: { ...s.spec, pool: { ...s.spec.pool, generation: 0 } } } : s));
    assert.equal(planSlices(pool, devices(300), mixed).writes.length, 3);
  });

  it("ignores other drivers' and other nodes' slices", () => {
    const foreign: ResourceSlice = { metadata: { name: "x" }, spec: { driver: "dra.net", nodeName: "node-a", pool: { name: "node-a", generation: 9, resourceSliceCount: 1 } } };
    const plan = planSlices(pool, devices(1), [foreign]);
    assert.equal(plan.generation, 0);
    assert.deepEqual(plan.deletes, []);
  });
});

describe("planSlices with device taints", () => {
  const tainted = (timeAdded?: string): Device => ({
    name: "dev-0000",
    attributes: {},
    taints: [{ key: "netclaim.dev/unhealthy", value: "LinkDown", effect: "NoSchedule", ...(timeAdded !== undefined && { timeAdded }) }],
  });

  it("keeps to 64 devices a slice where taints may appear", () => {
    const plan = planSlices(pool, devices(130), [], 64);
    assert.deepEqual(plan.writes.map((s) => s.spec.devices?.length), [64, 64, 2]);
  });

  it("takes a taint the server stamped with a time as written, and carries the time over on a rewrite", () => {
    const written = apply([], planSlices(pool, [tainted()], []));
    // The API server stamps the time of the write.
    const stamped = written.map((s) => ({ ...s, spec: { ...s.spec, devices: [tainted("2026-12-06T18:00:00Z")] } }));
    assert.deepEqual(planSlices(pool, [tainted()], stamped).writes, [], "no rewrite for the server's time");
    const rewrite = planSlices(pool, [tainted(), { name: "dev-0001" }], stamped);
    assert.equal(rewrite.writes[0]?.spec.devices?.[0]?.taints?.[0]?.timeAdded, "2026-12-06T18:00:00Z");
    const cleared = planSlices(pool, [{ name: "dev-0000", attributes: {} }], stamped);
    assert.equal(cleared.writes.length, 1, "a taint removed is a write");
    assert.equal(cleared.writes[0]?.spec.devices?.[0]?.taints, undefined);
  });

  it("takes a shared parent back from the API server in canonical quantities as unchanged, and reverts edits to its capacity", () => {
    const parent: Device = {
      name: "pci-0000-5e-00-0",
      allowMultipleAllocations: true,
      capacity: {
        bandwidth: { value: "10000M", requestPolicy: { default: "1250M", validRange: { min: "1000k", step: "1M", max: "2000M" } } },
        interfaces: { value: "8", requestPolicy: { default: "1", validValues: ["1"] } },
      },
    };
    const state = apply([], planSlices(pool, [parent], []));
    // As the server stores it: quantities canonical, allowMultipleAllocations and keys in its own order.
    const canonical = (bandwidth: DeviceCapacity): ResourceSlice[] =>
      state.map((s) => ({
        ...s,
        spec: { ...s.spec, devices: [{ capacity: { interfaces: { requestPolicy: { validValues: ["1"], default: "1" }, value: "8" }, bandwidth }, name: parent.name, allowMultipleAllocations: true }] },
      }));
    const stored: DeviceCapacity = { requestPolicy: { validRange: { max: "2G", min: "1M", step: "1M" }, default: "1250M" }, value: "10G" };
    assert.deepEqual(planSlices(pool, [parent], canonical(stored)).writes, []);
    for (const edited of [
      { ...stored, value: "20G" },
      { ...stored, requestPolicy: { ...stored.requestPolicy, default: "1G" } },
      { ...stored, requestPolicy: { default: "1250M", validRange: { min: "1M", step: "1M" } } },
      { value: "10G" },
    ]) {
      assert.equal(planSlices(pool, [parent], canonical(edited)).writes.length, 1, JSON.stringify(edited));
    }
    const unshared = state.map((s) => ({ ...s, spec: { ...s.spec, devices: [{ ...parent, allowMultipleAllocations: false }] } }));
    assert.equal(planSlices(pool, [parent], unshared).writes.length, 1, "allowMultipleAllocations taken away");
  });
});
