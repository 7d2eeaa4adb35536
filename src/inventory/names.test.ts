import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NetDevice } from "./device.ts";
import { assignDeviceNames, deviceName, isDnsLabel } from "./names.ts";

const base: NetDevice = { ifName: "eth1", ifIndex: 3, linkType: "ether", virtual: false, lowers: [], devPort: 0 };
const pci = { address: "0000:3b:00.1", vendorID: "15b3", deviceID: "101d" };

describe("device names", () => {
  it("names a PCI device after its address, whatever the interface is called", () => {
    assert.equal(deviceName({ ...base, ifName: "ens1f1np1", pci }), "pci-0000-3b-00-1");
  });

  it("adds the port when several netdevs share one PCI function", () => {
    const ports = [
      { ...base, ifName: "enp1s0", pci, devPort: 0 },
      { ...base, ifName: "enp1s0d1", pci, devPort: 1 },
    ];
    assert.deepEqual([...assignDeviceNames(ports).values()], ["pci-0000-3b-00-1-p0", "pci-0000-3b-00-1-p1"]);
  });

  it("keeps a valid interface name and encodes any other", () => {
    assert.equal(deviceName({ ...base, ifName: "dummy0", virtual: true }), "dummy0");
    const encoded = deviceName({ ...base, ifName: "Storage_Net", virtual: true });
    assert.equal(encoded, "net-kn2g64tbm5sv6ttfoq");
    assert.ok(isDnsLabel(encoded));
    assert.notEqual(deviceName({ ...base, ifName: "Storage.Net" }), encoded);
    assert.ok(isDnsLabel(deviceName({ ...base, ifName: "a".repeat(15).toUpperCase() })));
  });
});
