import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeDevices } from "./describe.ts";
import { devicePolicySchema } from "./policy.ts";
import { reportDevices } from "./scan.ts";
import type { NetDevice } from "./device.ts";

const nic = (ifName: string, ifIndex: number): NetDevice => ({ ifName, ifIndex, linkType: "ether", virtual: false, lowers: [], devPort: 0, speedMbps: 10_000 });

describe("describeDevices", () => {
  const snapshot = {
    reports: reportDevices([nic("ens2f0", 30), nic("ens2f1", 31)], new Set(), devicePolicySchema.parse({ include: [{ ifName: "ens2f0", share: { interfaces: 8 } }, { ifName: "ens2f1" }] })),
  };

  it("says in the table which device is a shared parent, with its figures", () => {
    const table = describeDevices(snapshot, { driverName: "netclaim.dev" });
    assert.match(table, /\nyes +ens2f0 +ens2f0 .*published as a shared parent: 8 interfaces, bandwidth 10G bit\/s \(link speed\)\n/);
    assert.match(table, /\nyes +ens2f1 +ens2f1 .*include\[1\] \{"ifName":"ens2f1"\}\n/);
  });

  it("gives scripts the resolved figures and the attribute in JSON, and nothing for a whole NIC", () => {
    const [parent, whole] = JSON.parse(describeDevices(snapshot, { driverName: "netclaim.dev", json: true })) as Record<string, unknown>[];
    assert.ok(parent !== undefined && whole !== undefined);
    assert.deepEqual(parent.share, {
      interfaces: 8,
      bandwidth: "10G",
      bandwidthFrom: "link speed",
      requestPolicy: { interfaces: { default: "1", validValues: ["1"] }, bandwidth: { default: "1250M", validRange: { min: "1M", step: "1M" } } },
    });
    assert.equal((parent.attributes as Record<string, unknown>)["netclaim.dev/sharedParent"], true);
    assert.equal("share" in whole, false);
  });
});
