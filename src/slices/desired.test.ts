import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chunkDevices, sliceName, toApiDevice } from "./desired.ts";
import type { DeviceReport, NetDevice, SharedParent } from "../inventory/index.ts";

const device: NetDevice = {
  ifName: "ens1f0v1",
  ifIndex: 21,
  linkType: "ether",
  virtual: false,
  lowers: [],
  devPort: 0,
  pci: { address: "0000:3b:00.3", vendorID: "15b3", deviceID: "101e" },
};

function report(overrides: Partial<DeviceReport>): DeviceReport {
  return {
    name: "pci-0000-3b-00-3",
    device,
    attributes: { local: { ifName: "ens1f0v1", mtu: 1500, isSriovVf: true }, standard: { pcieRoot: "pci0000:3a", numaNode: 0 } },
    publish: true,
    reason: "eligible",
    multusResourceName: "example.com/vf",
    attached: false,
    ...overrides,
  };
}

describe("toApiDevice", () => {
  it("qualifies attributes by domain with the right value types, keys sorted", () => {
    const api = toApiDevice(report({}), "netclaim.dev");
    assert.deepEqual(api, {
      name: "pci-0000-3b-00-3",
      attributes: {
        "k8s.cni.cncf.io/deviceID": { string: "0000:3b:00.3" },
        "k8s.cni.cncf.io/resourceName": { string: "example.com/vf" },
        "netclaim.dev/ifName": { string: "ens1f0v1" },
        "netclaim.dev/isSriovVf": { bool: true },
        "netclaim.dev/mtu": { int: 1500 },
        "resource.kubernetes.io/numaNode": { int: 0 },
        "resource.kubernetes.io/pcieRoot": { string: "pci0000:3a" },
      },
    });
    const keys = Object.keys(api.attributes);
    assert.deepEqual(keys, [...keys].sort());
  });

  it("uses the configured driver name and leaves out values the API would reject", () => {
    const api = toApiDevice(report({ attributes: { local: { ifName: "x".repeat(65) }, standard: {} } }), "example.org");
    assert.equal(api.attributes?.["example.org/ifName"], undefined);
    assert.ok("k8s.cni.cncf.io/deviceID" in (api.attributes ?? {}));
  });

  it("gives Multus a device without a PCI address by its interface name", () => {
    const veth: NetDevice = { ifName: "ncveth0", ifIndex: 7, linkType: "ether", virtual: true, lowers: [], devPort: 0 };
    const api = toApiDevice(report({ name: "ncveth0", device: veth }), "netclaim.dev");
    assert.deepEqual(api.attributes?.["k8s.cni.cncf.io/deviceID"], { string: "ncveth0" });
    assert.deepEqual(api.attributes["k8s.cni.cncf.io/resourceName"], { string: "example.com/vf" });
  });

  it("publishes no Multus pair without a resource name", () => {
    const { multusResourceName, ...withoutName } = report({});
    assert.ok(multusResourceName !== undefined);
    const api = toApiDevice(withoutName, "netclaim.dev");
    assert.equal(api.attributes?.["k8s.cni.cncf.io/deviceID"], undefined);
  });
});

describe("toApiDevice: shared parents", () => {
  const share: SharedParent = {
    interfaces: 8,
    bandwidth: "10000M",
    bandwidthFrom: "share.bandwidth",
    requestPolicy: { interfaces: { default: "1", validValues: ["1"] }, bandwidth: { default: "1250M", validRange: { min: "1M", step: "1M" } } },
  };
  const parent = report({ share, attributes: { local: { ifName: "ens2f0", sharedParent: true }, standard: {} } });

  it("allows multiple allocations and publishes both capacities, unqualified, with their request policies", () => {
    const api = toApiDevice(parent, "netclaim.dev");
    assert.equal(api.allowMultipleAllocations, true);
    assert.deepEqual(api.capacity, {
      bandwidth: { value: "10000M", requestPolicy: { default: "1250M", validRange: { min: "1M", step: "1M" } } },
      interfaces: { value: "8", requestPolicy: { default: "1", validValues: ["1"] } },
    });
    assert.deepEqual(api.attributes?.["netclaim.dev/sharedParent"], { bool: true });
  });

  it("publishes the capacities' values alone where the API server keeps no consumable capacity", () => {
    const api = toApiDevice(parent, "netclaim.dev", [], { consumableCapacity: false });
    assert.equal("allowMultipleAllocations" in api, false);
    assert.deepEqual(api.capacity, { bandwidth: { value: "10000M" }, interfaces: { value: "8" } });
  });

  it("leaves bandwidth out when the parent has no figure, and a whole device has neither field", () => {
    const noBandwidth: SharedParent = { interfaces: 8, requestPolicy: { interfaces: share.requestPolicy.interfaces } };
    const api = toApiDevice(report({ share: noBandwidth }), "netclaim.dev");
    assert.deepEqual(api.capacity, { interfaces: { value: "8", requestPolicy: { default: "1", validValues: ["1"] } } });
    const whole = toApiDevice(report({}), "netclaim.dev");
    assert.equal("capacity" in whole || "allowMultipleAllocations" in whole, false);
  });
});

describe("chunkDevices and sliceName", () => {
  it("splits at 128 devices and keeps one empty slice for an empty pool", () => {
    const devices = Array.from({ length: 300 }, (_, i) => ({ name: `d${i}` }));
    assert.deepEqual(chunkDevices(devices).map((c) => c.length), [128, 128, 44]);
    assert.deepEqual(chunkDevices([]), [[]]);
  });

  it("makes names within the 253-character limit, distinct per node", () => {
    assert.equal(sliceName({ nodeName: "worker-1", driverName: "netclaim.dev" }, 2), "worker-1-netclaim.dev-2");
    const long = sliceName({ nodeName: `${"a".repeat(62)}.${"b".repeat(62)}.${"c".repeat(62)}.${"d".repeat(62)}`, driverName: "netclaim.dev" }, 9);
    assert.ok(long.length <= 253);
    assert.notEqual(long, sliceName({ nodeName: `${"a".repeat(62)}.${"b".repeat(62)}.${"c".repeat(62)}.${"e".repeat(62)}`, driverName: "netclaim.dev" }, 9));
  });
});
