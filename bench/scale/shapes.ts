/**
 * The hardware of a simulated node, as a sysfs tree the real inventory
 * scans: ConnectX-6 Dx PFs (with RDMA) split over two PCIe root complexes on
 * two NUMA nodes, each with SR-IOV VFs, plus the uplink (default route, so
 * never published) and loopback. The two roots are what a 2-NIC claim's
 * matchAttribute on resource.kubernetes.io/pcieRoot chooses between, and what
 * the fake GPUs of the GPU+NIC shape are aligned with.
 *
 * Nodes of one shape share one tree: identical servers have identical PCI
 * layouts, so every node of a shape publishes the same devices and
 * attributes, and its slices are as large as its own would be.
 */
import { VM_HOST_DEVICES } from "../../test/fixtures/nodes.ts";
import type { PciFunctionSpec, SysfsFixture } from "../../test/fixtures/sysfs-tree.ts";

export const ROOTS = [
  { root: "pci0000:3a", bridge: "0000:3a:00.0", numaNode: 0 },
  { root: "pci0000:d7", bridge: "0000:d7:00.0", numaNode: 1 },
] as const;

/** `pfs` PFs with `vfsPerPf` VFs each: pfs × (1 + vfsPerPf) published devices. */
export function sriovServer(pfs: number, vfsPerPf: number): SysfsFixture {
  const pci: PciFunctionSpec[] = [];
  for (let p = 0; p < pfs; p++) {
    const { root, bridge, numaNode } = ROOTS[p % ROOTS.length]!;
    const bus = (0x3b + p).toString(16).padStart(2, "0");
    const pfAddress = `0000:${bus}:00.0`;
    const common = { root, bridge, vendor: "15b3", subsystemVendor: "15b3", subsystemDevice: "0016", driver: "mlx5_core", numaNode };
    pci.push({
      ...common,
      address: pfAddress,
      device: "101d",
      sriovTotalVfs: 127,
      sriovNumVfs: vfsPerPf,
      netdevs: [{ name: `ens${p + 1}f0np0`, ifindex: 100 * (p + 1), mac: mac(p, 0), mtu: 9000, speed: 100000 }],
      rdma: { device: `mlx5_${p}`, uverbs: `uverbs${p}` },
    });
    for (let v = 0; v < vfsPerPf; v++) {
      // VFs sit at device 1.. function 0-7 of the PF's bus, as the kernel places them.
      const slot = (1 + Math.floor(v / 8)).toString(16).padStart(2, "0");
      pci.push({
        ...common,
        address: `0000:${bus}:${slot}.${v % 8}`,
        device: "101e",
        physfn: { address: pfAddress, index: v },
        netdevs: [{ name: `ens${p + 1}f0v${v}`, ifindex: 100 * (p + 1) + v + 1, mac: mac(p, v + 1), speed: 100000 }],
      });
    }
  }
  pci.push(VM_HOST_DEVICES.uplink);
  return { pci, virtual: [VM_HOST_DEVICES.loopback], defaultRoutes: VM_HOST_DEVICES.defaultRoutes };
}

function mac(pf: number, index: number): string {
  const hex = (n: number): string => n.toString(16).padStart(2, "0");
  return `02:5c:00:${hex(pf)}:${hex(index >> 8)}:${hex(index & 0xff)}`;
}

/** The two shapes of the fleet: 64 devices (4 PFs × 15 VFs), and 192 (8 × 23) whose pool needs two slices. */
export const SHAPES = {
  standard: { pfs: 4, vfsPerPf: 15, devices: 64 },
  large: { pfs: 8, vfsPerPf: 23, devices: 192 },
} as const;
export type ShapeName = keyof typeof SHAPES;
