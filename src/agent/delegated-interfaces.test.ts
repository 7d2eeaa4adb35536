import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Address, Link } from "../netlink/index.ts";
import { findDelegatedInterface } from "./delegated-interfaces.ts";

const link = (index: number, name: string, extra: Partial<Link> = {}): Link => ({ index, name, mtu: 1500, up: true, carrier: true, ...extra });
const address = (index: number, cidr: string, scope = 0): Address => {
  const [ip = "", prefix = "0"] = cidr.split("/");
  return { family: ip.includes(":") ? 6 : 4, index, address: ip, prefixLength: Number(prefix), scope, flags: 0 };
};

// What a pod holds after Multus's CNI ADD: its default network and the delegated device as net1.
const podLinks = [
  link(1, "lo"),
  link(3, "eth0", { kind: "veth", mac: "0a:58:c6:12:00:02" }),
  link(42, "net1", { kind: "veth", mac: "02:00:00:00:00:2a" }),
  link(5, "net2", { mac: "b8:ce:f6:00:00:01", parentDevice: "0000:3b:00.2", parentBus: "pci" }),
];
const podAddresses = [
  address(1, "127.0.0.1/8", 254),
  address(3, "198.18.0.2/26"),
  address(42, "198.51.100.230/24"),
  address(42, "fe80::2a/64", 253),
  address(42, "2001:db8::2a/64"),
  address(5, "203.0.113.9/24"),
];

describe("findDelegatedInterface", () => {
  it("finds a PCI device by its address, whatever Multus named it", () => {
    assert.deepEqual(findDelegatedInterface({ name: "ens1f0v2", ifindex: 5, pciAddress: "0000:3b:00.2" }, podLinks, podAddresses), {
      name: "net2",
      addresses: ["203.0.113.9/24"],
      hardwareAddress: "b8:ce:f6:00:00:01",
    });
  });

  it("finds a device without a PCI address by its host ifindex, with its global addresses only", () => {
    assert.deepEqual(findDelegatedInterface({ name: "ncveth0", ifindex: 42 }, podLinks, podAddresses), {
      name: "net1",
      addresses: ["198.51.100.230/24", "2001:db8::2a/64"],
      hardwareAddress: "02:00:00:00:00:2a",
    });
  });

  it("finds nothing when the device is not in the pod (Multus had no network for it)", () => {
    assert.equal(findDelegatedInterface({ name: "ens1f0v3", ifindex: 6, pciAddress: "0000:3b:00.3" }, podLinks, podAddresses), undefined);
    assert.equal(findDelegatedInterface({ name: "ncveth1", ifindex: 43 }, podLinks, podAddresses), undefined);
    assert.equal(findDelegatedInterface({ name: "ncveth1" }, podLinks, podAddresses), undefined, "no ifindex, no match");
  });
});
