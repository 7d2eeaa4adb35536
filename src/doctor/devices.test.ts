import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DeviceReport, InventorySnapshot } from "../inventory/index.ts";
import { checkDevices } from "./devices.ts";

/** The fields of a scan's report the check reads. */
function report(ifName: string, publish: boolean, reason: string, name = ifName): DeviceReport {
  return { name, device: { ifName }, publish, reason, attributes: { local: {}, standard: {} }, attached: false } as unknown as DeviceReport;
}

describe("checkDevices", () => {
  it("checkDevices names the published devices and groups the others by why they are left out", () => {
    const snapshot: InventorySnapshot = {
      reports: [
        report("ens1f0", true, "included by rule 1", "pci-0000-3b-00-0"),
        report("ens1f1", true, "included by rule 1"),
        report("eth0", false, "never published: carries a default route (node uplink)"),
        ...["veth1", "veth2", "veth3", "veth4", "veth5"].map((name) => report(name, false, "never published by default: veth")),
      ],
    };
    assert.deepEqual(checkDevices(snapshot, " --config /etc/netclaim/agent.yaml"), {
      name: "devices",
      status: "PASS",
      message:
        "publishes 2 of 8: pci-0000-3b-00-0 (ens1f0), ens1f1; left out: eth0 (never published: carries a default route (node uplink)); veth1, veth2, veth3 and 2 more (never published by default: veth)",
    });
  });

  it("checkDevices warns when the policy publishes nothing, pointing at netclaim devices", () => {
    const result = checkDevices({ reports: [report("lo", false, "never published: loopback")] }, " --config /etc/netclaim/agent.yaml");
    assert.equal(result.status, "WARN");
    assert.equal(result.message, "the device policy publishes none of the node's 1 network devices; left out: lo (never published: loopback)");
    assert.match(result.fix ?? "", /netclaim devices --config \/etc\/netclaim\/agent.yaml shows each device's verdict/);
  });
});
