import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import type { NetDevice } from "./device.ts";
import { discoverNetDevices } from "./discover.ts";
import { CNI_HOST_INTERFACES, GUARDED_KINDS, guardedKinds } from "./guard.ts";
import { SysfsRoot } from "./sysfs.ts";
import { cniNode } from "../../test/fixtures/nodes.ts";
import { fixtureLinkKinds, writeSysfsFixture } from "../../test/fixtures/sysfs-tree.ts";

const fixture = cniNode();
let root: string;
before(async () => {
  root = await mkdtemp("/tmp/nc-unit-");
  await writeSysfsFixture(root, fixture);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function guardsOf(withNetlink: boolean): Promise<Map<string, readonly string[]>> {
  const devices = await discoverNetDevices(new SysfsRoot(root), withNetlink ? { linkKinds: fixtureLinkKinds(fixture) } : {});
  const byName = new Map<string, NetDevice>(devices.map((d) => [d.ifName, d]));
  return new Map(devices.map((d) => [d.ifName, guardedKinds(d, byName)]));
}

describe("guardedKinds", () => {
  it("finds every guarded kind, role and CNI name from the kernel's link kinds", async () => {
    const guards = await guardsOf(true);
    for (const [ifName, expected] of Object.entries(fixture.guards)) {
      assert.deepEqual(guards.get(ifName), expected, ifName);
    }
  });

  it("is exercised by the fixture for every guarded kind", () => {
    const covered = new Set(Object.values(fixture.guards).flat());
    assert.deepEqual(GUARDED_KINDS.filter((kind) => !covered.has(kind)), []);
  });

  it("knows the host interfaces of Calico, Cilium, OVN-Kubernetes, Antrea, flannel, NodeLocal DNS and runtimes by name", () => {
    const names = [
      "cali0a1b2c3d", "vxlan.calico", "tunl0", "lxc0a1b2c3d", "cilium_host", "cilium_vxlan", "ovn-k8s-mp0", "br-int", "br-ex",
      "genev_sys_6081", "ovs-system", "antrea-gw0", "antrea-tun0", "nodelocaldns", "flannel.1", "cni0", "docker0", "kube-ipvs0",
    ];
    const nic: NetDevice = { ifName: "", ifIndex: 2, linkType: "ether", virtual: false, lowers: [], devPort: 0 };
    const everyPattern = CNI_HOST_INTERFACES.map((pattern) => pattern.replace("*", "0a1b"));
    for (const ifName of [...names, ...everyPattern]) assert.deepEqual(guardedKinds({ ...nic, ifName }, new Map()), ["cni"], ifName);
    for (const ifName of ["eth0", "ens1f0", "cal0", "lx0", "br-storage", "veth0", "flannel1"]) {
      assert.deepEqual(guardedKinds({ ...nic, ifName }, new Map()), [], ifName);
    }
  });

  it("falls back to what sysfs shows without netlink: bridges, bonds, tun/tap, tunnels by ARPHRD type and DEVTYPE", async () => {
    const guards = await guardsOf(false);
    const expected: Record<string, readonly string[]> = {
      "br-storage": ["bridge"],
      "eth4": ["bridge-port"],
      "veth0c1d2e3f": ["bridge-port"],
      "bond1": ["bond"],
      "eth2": ["bond-member"],
      "tap0": ["tun"],
      "tun0": ["tun"],
      "ipip1": ["ipip"],
      "sit1": ["sit"],
      "ip6tnl1": ["ip6tnl"],
      "gre1": ["gre"],
      "ip6gre1": ["ip6gre"],
      "vxlan100": ["vxlan"],
      "wg0": ["wireguard"],
      "genev_sys_6081": ["geneve", "cni"],
      // sysfs cannot tell a veth, a dummy or an OVS port: only their names guard them.
      "cali1234abcd": ["cni"],
      "kube-ipvs0": ["cni"],
      "nk0": [],
      "eth1": [],
      "eth1.200": [],
    };
    for (const [ifName, kinds] of Object.entries(expected)) assert.deepEqual(guards.get(ifName), kinds, ifName);
  });
});
