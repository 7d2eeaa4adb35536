import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mergeNetworkStatus, networkStatusEntry, type AttachedInterface, type NetworkStatusMerge } from "./network-status.ts";

const DRIVER = "netclaim.dev";

/** What Multus wrote for a pod with the default network and one NAD, in its own layout. */
const multus = `[{
    "name": "nc-default",
    "interface": "eth0",
    "ips": [
        "10.88.0.12"
    ],
    "mac": "8e:2c:7a:1f:00:01",
    "default": true,
    "dns": {}
},{
    "name": "default/macvlan-a",
    "interface": "net1",
    "ips": [
        "198.51.100.200"
    ],
    "mac": "4a:11:22:33:44:55",
    "dns": {},
    "device-info": {
        "type": "pci",
        "version": "1.1.0",
        "pci": {
            "pci-address": "0000:3b:00.2"
        }
    }
}]`;

const nic: AttachedInterface = {
  claim: { namespace: "default", name: "web-0-nic" },
  request: "nic",
  interfaceName: "nc0",
  addresses: ["192.0.2.10/24", "2001:db8::10/64"],
  mac: "02:00:00:00:00:10",
  mtu: 9000,
};

function changed(merge: NetworkStatusMerge): unknown[] {
  assert.equal(merge.kind, "changed");
  return JSON.parse(merge.annotation) as unknown[];
}

describe("networkStatusEntry", () => {
  it("names the entry after the driver, the claim and the request, with bare addresses as Multus lists them", () => {
    assert.deepEqual(networkStatusEntry(DRIVER, nic), {
      name: "netclaim.dev/default/web-0-nic/nic",
      interface: "nc0",
      ips: ["192.0.2.10", "2001:db8::10"],
      mac: "02:00:00:00:00:10",
      mtu: 9000,
      dns: {},
    });
  });

  it("leaves out what the interface does not have, as Multus does, and is never the default network", () => {
    const entry = networkStatusEntry(DRIVER, { ...nic, request: "nic/fast", addresses: [], mac: undefined, mtu: undefined });
    assert.deepEqual(entry, { name: "netclaim.dev/default/web-0-nic/nic/fast", interface: "nc0", dns: {} });
  });
});

describe("mergeNetworkStatus", () => {
  const ourEntry = networkStatusEntry(DRIVER, nic);
  const ours = [ourEntry];

  it("appends our entries after Multus's, which stay exactly as they were", () => {
    const merged = changed(mergeNetworkStatus(multus, ours, DRIVER));
    assert.deepEqual(merged, [...(JSON.parse(multus) as unknown[]), ourEntry]);
    // In Multus's layout: what was there is a prefix of the new text, up to the list's end.
    const result = mergeNetworkStatus(multus, ours, DRIVER);
    assert.ok(result.kind === "changed" && result.annotation.startsWith(multus.slice(0, -1)));
  });

  it("writes a list of our entries alone when the pod has no annotation", () => {
    assert.deepEqual(changed(mergeNetworkStatus(undefined, ours, DRIVER)), ours);
  });

  it("replaces our earlier entry on the same interface and keeps our others", () => {
    const other = networkStatusEntry(DRIVER, { ...nic, request: "storage", interfaceName: "nc1", mtu: undefined });
    const before = mergeNetworkStatus(multus, [{ ...ourEntry, ips: ["192.0.2.99"] }, other], DRIVER);
    assert.equal(before.kind, "changed");
    const merged = changed(mergeNetworkStatus(before.annotation, ours, DRIVER));
    assert.deepEqual(merged.map((e) => [(e as { name: string }).name, (e as { interface: string }).interface]), [
      ["nc-default", "eth0"],
      ["default/macvlan-a", "net1"],
      ["netclaim.dev/default/web-0-nic/storage", "nc1"],
      ["netclaim.dev/default/web-0-nic/nic", "nc0"],
    ]);
    assert.deepEqual(merged.at(-1), ourEntry);
  });

  it("never replaces another writer's entry, even on an interface we report", () => {
    const foreign = JSON.stringify([{ name: "default/stale", interface: "nc0", dns: {} }]);
    assert.equal(changed(mergeNetworkStatus(foreign, ours, DRIVER)).length, 2);
  });

  it("says unchanged when the annotation already holds our entries, and when there are none to add", () => {
    const once = mergeNetworkStatus(multus, ours, DRIVER);
    assert.equal(once.kind, "changed");
    assert.deepEqual(mergeNetworkStatus(once.annotation, ours, DRIVER), { kind: "unchanged" });
    assert.deepEqual(mergeNetworkStatus(multus, [], DRIVER), { kind: "unchanged" });
    assert.deepEqual(mergeNetworkStatus("not json", [], DRIVER), { kind: "unchanged" });
  });

  for (const [what, annotation] of [
    ["not JSON", "[{"],
    ["not a list", JSON.stringify({ name: "default/macvlan-a" })],
    ["an entry without a name", JSON.stringify([{ interface: "net1" }])],
    ["an entry that is not an object", JSON.stringify(["default/macvlan-a"])],
    ["empty", ""],
  ] as const) {
    it(`leaves an annotation that is ${what} alone and says why`, () => {
      const merge = mergeNetworkStatus(annotation, ours, DRIVER);
      assert.equal(merge.kind, "malformed");
      assert.match(merge.reason, /^not /);
    });
  }
});
