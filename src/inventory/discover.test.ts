import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { discoverNetDevices, type DiscoveryOptions } from "./discover.ts";
import { SysfsRoot } from "./sysfs.ts";
import type { NetDevice } from "./device.ts";
import { connectxNode, e810Node, virtioNode } from "../../test/fixtures/nodes.ts";
import { fixtureLinkKinds, writeSysfsFixture, type SysfsFixture } from "../../test/fixtures/sysfs-tree.ts";

const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function discover(fixture: SysfsFixture, options: DiscoveryOptions = {}): Promise<Map<string, NetDevice>> {
  const root = await mkdtemp("/tmp/nc-unit-");
  roots.push(root);
  await writeSysfsFixture(root, fixture);
  return new Map((await discoverNetDevices(new SysfsRoot(root), options)).map((d) => [d.ifName, d]));
}

describe("discoverNetDevices", () => {
  it("reads a ConnectX PF: ids, driver, NUMA, PCIe root, SR-IOV and RDMA char devices", async () => {
    const pf = (await discover(connectxNode())).get("ens1f0np0")!;
    assert.deepEqual(pf.pci, {
      address: "0000:3b:00.0",
      vendorID: "15b3",
      deviceID: "101d",
      subsystemVendorID: "15b3",
      subsystemDeviceID: "0016",
      driver: "mlx5_core",
      numaNode: 0,
      pcieRoot: "pci0000:3a",
      sriov: { totalVfs: 8, numVfs: 4 },
    });
    assert.deepEqual(pf.rdma, {
      device: "mlx5_0",
      charDevices: ["/dev/infiniband/issm0", "/dev/infiniband/rdma_cm", "/dev/infiniband/umad0", "/dev/infiniband/uverbs0"],
    });
    assert.equal(pf.mtu, 9000);
    assert.equal(pf.speedMbps, 100000);
    assert.equal(pf.linkType, "ether");
    assert.equal(pf.virtual, false);
  });

  it("reads a VF's PF and index from physfn and virtfnN", async () => {
    const vf = (await discover(connectxNode())).get("ens1f0v2")!;
    assert.deepEqual(vf.pci!.vf, { pfAddress: "0000:3b:00.0", index: 2 });
    assert.equal(vf.pci!.sriov, undefined);
    assert.equal(vf.rdma!.device, "mlx5_4");
  });

  it("finds the PCI function above a virtio device and keeps the netdev driver apart", async () => {
    const devices = await discover(virtioNode());
    const eth1 = devices.get("eth1")!;
    assert.equal(eth1.pci!.address, "0000:00:04.0");
    assert.equal(eth1.pci!.driver, "virtio-pci");
    assert.equal(eth1.netDriver, "virtio_net");
    assert.equal(eth1.pci!.numaNode, undefined, "numa_node -1 means no affinity");
    assert.equal(eth1.speedMbps, undefined, "speed -1 is not a speed");
    assert.equal(devices.get("dummy0")?.virtual, true);
    assert.equal(devices.get("dummy0")?.pci, undefined);
    assert.equal(devices.get("veth1a2b3c4d")?.master, "cni0");
    assert.equal(devices.get("lo")?.linkType, "loopback");
  });

  it("reads E810 facts, a down port without speed, and stacked uplinks", async () => {
    const devices = await discover(e810Node());
    assert.equal(devices.get("ens2f0")?.pci?.pcieRoot, "pci0000:5d");
    assert.equal(devices.get("ens2f0")?.pci?.numaNode, 1);
    assert.deepEqual(devices.get("ens2f0")?.pci?.sriov, { totalVfs: 128, numVfs: 0 });
    assert.equal(devices.get("ens2f1")?.operState, "down");
    assert.equal(devices.get("ens2f1")?.speedMbps, undefined);
    assert.equal(devices.get("ens2f0")?.rdma, undefined);
    assert.deepEqual(devices.get("bond0.100")?.lowers, ["bond0"]);
    assert.equal(devices.get("eno1")?.master, "bond0");
  });

  it("takes each link's kind from the link dump, and without one from what sysfs shows", async () => {
    const fixture = virtioNode();
    const kinds = (devices: Map<string, NetDevice>): Record<string, string | undefined> =>
      Object.fromEntries(["eth1", "cni0", "veth1a2b3c4d", "dummy0"].map((name) => [name, devices.get(name)?.kind]));
    assert.deepEqual(kinds(await discover(fixture, { linkKinds: fixtureLinkKinds(fixture) })), {
      eth1: undefined,
      cni0: "bridge",
      veth1a2b3c4d: "veth",
      dummy0: "dummy",
    });
    assert.deepEqual(kinds(await discover(fixture)), { eth1: undefined, cni0: "bridge", veth1a2b3c4d: undefined, dummy0: undefined });
  });

  describe("from an earlier discovery", () => {
    /** A fixture tree, its full discovery, and a way to change one attribute file of it. */
    async function earlierTree(fixture: SysfsFixture): Promise<{ sysfs: SysfsRoot; devices: NetDevice[]; set: (path: string, value: string) => Promise<void> }> {
      const root = await mkdtemp("/tmp/nc-unit-");
      roots.push(root);
      await writeSysfsFixture(root, fixture);
      const sysfs = new SysfsRoot(root);
      return { sysfs, devices: await discoverNetDevices(sysfs), set: (path, value) => writeFile(join(root, path), `${value}\n`) };
    }
    /** Each device by name; a link found twice fails the test. */
    const byName = (devices: readonly NetDevice[]): Map<string, NetDevice> => {
      const map = new Map(devices.map((d) => [d.ifName, d]));
      assert.equal(map.size, devices.length, `a link is listed twice: ${devices.map((d) => d.ifName).join(", ")}`);
      return map;
    };

    it("reads the links named as changed and takes the others as they were, until a full discovery", async () => {
      const { sysfs, devices, set } = await earlierTree(virtioNode());
      await set("/sys/class/net/eth1/mtu", "9000");
      await set("/sys/class/net/Storage_Net/mtu", "1400");
      const next = byName(await discoverNetDevices(sysfs, { earlier: { devices, changed: new Set(["eth1"]) } }));
      assert.equal(next.get("eth1")?.mtu, 9000, "named: read again");
      assert.equal(next.get("Storage_Net")?.mtu, 9000, "not named: taken from the earlier discovery");
      assert.equal(next.get("Storage_Net"), byName(devices).get("Storage_Net"));
      assert.deepEqual([...next.keys()], devices.map((d) => d.ifName), "the same devices, in the same order");
      assert.equal((await discoverNetDevices(sysfs)).find((d) => d.ifName === "Storage_Net")?.mtu, 1400);
    });

    it("reads a link it has not seen and a link whose kind changed, and drops one that is gone", async () => {
      const fixture = virtioNode();
      const { sysfs, devices } = await earlierTree({ ...fixture, virtual: fixture.virtual.filter((d) => d.name !== "dummy0") });
      const root = sysfs.root;
      await rm(root, { recursive: true });
      // dummy0 is new; Storage_Net is gone; cni0 was recorded as another kind than the kernel's.
      await writeSysfsFixture(root, { ...fixture, virtual: fixture.virtual.filter((d) => d.name !== "Storage_Net") });
      const earlier = devices.map((d) => (d.ifName === "cni0" ? { ...d, kind: "vxlan", mtu: 1 } : d));
      const next = byName(await discoverNetDevices(sysfs, { linkKinds: fixtureLinkKinds(fixture), earlier: { devices: earlier, changed: new Set() } }));
      assert.equal(next.get("dummy0")?.kind, "dummy");
      assert.equal(next.has("Storage_Net"), false);
      assert.equal(next.get("cni0")?.kind, "bridge");
      assert.equal(next.get("cni0")?.mtu, 1450);
    });

    it("reads a PF again when one of its VFs changed, came or went (its VF count)", async () => {
      const { sysfs, devices, set } = await earlierTree(connectxNode());
      await set("/sys/bus/pci/devices/0000:3b:00.0/sriov_numvfs", "3");
      const unrelated = byName(await discoverNetDevices(sysfs, { earlier: { devices, changed: new Set(["ens1f1np1"]) } }));
      assert.deepEqual(unrelated.get("ens1f0np0")?.pci?.sriov, { totalVfs: 8, numVfs: 4 }, "nothing named touches the PF");
      const viaVf = byName(await discoverNetDevices(sysfs, { earlier: { devices, changed: new Set(["ens1f0v3"]) } }));
      assert.deepEqual(viaVf.get("ens1f0np0")?.pci?.sriov, { totalVfs: 8, numVfs: 3 });
      assert.equal(viaVf.get("ens1f1np1"), byName(devices).get("ens1f1np1"), "the other port's PF is taken as it was");
    });
  });

  it("fails clearly when the root has no /sys/class/net", async () => {
    await assert.rejects(discoverNetDevices(new SysfsRoot("/nonexistent-nc")), { code: "DISCOVERY_NO_SYSFS" });
  });
});
