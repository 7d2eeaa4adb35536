import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { claimStatusApplyBody, deviceStatus, StatusReason } from "./status.ts";

const REF = { driver: "netclaim.dev", pool: "worker-1", device: "pci-0000-03-00-0" };
const T0 = new Date("2026-11-28T05:00:00.123Z");
const T1 = new Date("2026-11-28T05:10:00Z");

describe("deviceStatus", () => {
  it("reports an attached interface with canonical CIDRs and a Ready=True condition", () => {
    const entry = deviceStatus(
      REF,
      { kind: "attached", interfaceName: "nc0", addresses: ["FD00:0::5/64", "198.51.100.7/24", "fd00::5/64"], hardwareAddress: "02:00:00:00:00:01", late: false },
      { now: T0 },
    );
    assert.deepEqual(entry.networkData, { interfaceName: "nc0", ips: ["fd00::5/64", "198.51.100.7/24"], hardwareAddress: "02:00:00:00:00:01" });
    assert.deepEqual(entry.conditions, [
      { type: "Ready", status: "True", reason: "InterfaceAttached", message: "nc0 attached and configured", lastTransitionTime: "2026-11-28T05:00:00Z" },
    ]);
  });

  it("says so when the interface was attached late", () => {
    const [ready] = deviceStatus(REF, { kind: "attached", interfaceName: "nc0", addresses: [], late: true }, { now: T0 }).conditions;
    assert.ok(ready);
    assert.equal(ready.reason, StatusReason.InterfaceAttachedLate);
    assert.match(ready.message, /after the pod sandbox had started/);
  });

  it("keeps lastTransitionTime while the status does not change, and moves it when it does", () => {
    const first = deviceStatus(REF, { kind: "prepared" }, { now: T0 });
    const failed = deviceStatus(REF, { kind: "failed", reason: "AttachFailed", message: "boom" }, { now: T1, previous: first });
    assert.equal(failed.conditions[0]?.lastTransitionTime, "2026-11-28T05:00:00Z", "False to False keeps the time");
    const attached = deviceStatus(REF, { kind: "attached", interfaceName: "nc0", addresses: [], late: false }, { now: T1, previous: failed });
    assert.equal(attached.conditions[0]?.lastTransitionTime, "2026-11-28T05:10:00Z");
  });

  it("reports failures with their reason and a bounded message, and no networkData", () => {
    const entry = deviceStatus(REF, { kind: "failed", reason: "InvalidConfig", message: "x".repeat(10_000) }, { now: T0 });
    const [ready] = entry.conditions;
    assert.ok(ready);
    assert.equal(ready.status, "False");
    assert.equal(ready.reason, "InvalidConfig");
    assert.equal(ready.message.length, 4096);
    assert.equal(entry.networkData, undefined);
  });

  it("describes a device left to Multus", () => {
    const entry = deviceStatus(REF, { kind: "delegated", resourceName: "netclaim.dev/fast" }, { now: T0 });
    const [ready] = entry.conditions;
    assert.ok(ready);
    assert.equal(ready.reason, "DelegatedToMultus");
    assert.match(ready.message, /^left to Multus: .*resourceName=netclaim\.dev\/fast/);
    assert.equal(entry.networkData, undefined, "not in the pod yet");
  });

  it("reports the interface Multus made of a delegated device", () => {
    const state = { kind: "delegated", resourceName: "netclaim.dev/fast", interfaceName: "net1", addresses: ["198.51.100.230/24"], hardwareAddress: "02:00:00:00:00:2a" } as const;
    const entry = deviceStatus(REF, state, { now: T0 });
    const [ready] = entry.conditions;
    assert.ok(ready);
    assert.equal(ready.reason, "DelegatedToMultus");
    assert.match(ready.message, /^net1 configured by Multus, from .*resourceName=netclaim\.dev\/fast/);
    assert.deepEqual(entry.networkData, { interfaceName: "net1", ips: ["198.51.100.230/24"], hardwareAddress: "02:00:00:00:00:2a" });
  });
});

describe("claimStatusApplyBody", () => {
  it("builds an apply configuration pinned to the claim's uid", () => {
    const body = claimStatusApplyBody({ namespace: "ns", name: "c", uid: "u-1" }, []);
    assert.deepEqual(body, {
      apiVersion: "resource.k8s.io/v1",
      kind: "ResourceClaim",
      metadata: { namespace: "ns", name: "c", uid: "u-1" },
      status: { devices: [] },
    });
  });
});
