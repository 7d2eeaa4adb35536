/**
 * The device model: what the inventory knows about one network device on the
 * node, independent of how it is published. Fields are absent when the
 * kernel does not expose them (a virtual link has no PCI facts).
 */

export interface PciFacts {
  /** Full BDF, e.g. 0000:3b:00.0. */
  readonly address: string;
  /** Four lowercase hex digits each, as sysfs prints them without "0x". */
  readonly vendorID: string;
  readonly deviceID: string;
  readonly subsystemVendorID?: string;
  readonly subsystemDeviceID?: string;
  /** Kernel driver bound to the PCI function (mlx5_core, ice, virtio-pci). */
  readonly driver?: string;
  /** NUMA node; absent when the kernel reports -1 (no affinity). */
  readonly numaNode?: number;
  /** The PCIe root complex, "pci<domain>:<bus>", as resource.kubernetes.io/pcieRoot expects. */
  readonly pcieRoot?: string;
  /** SR-IOV capability of a physical function. */
  readonly sriov?: { readonly totalVfs: number; readonly numVfs: number };
  /** Set when this function is a virtual function. */
  readonly vf?: { readonly pfAddress: string; readonly index: number };
}

export interface RdmaFacts {
  /** The RDMA device name (mlx5_0). */
  readonly device: string;
  /** Character devices a pod needs, e.g. /dev/infiniband/uverbs0, sorted. */
  readonly charDevices: readonly string[];
}

export interface NetDevice {
  readonly ifName: string;
  readonly ifIndex: number;
  readonly mac?: string;
  readonly mtu?: number;
  /** operstate: up, down, lowerlayerdown, unknown, ... */
  readonly operState?: string;
  /** Link-layer type from ARPHRD: ether, infiniband, loopback, none, or the number. */
  readonly linkType: string;
  /** Link speed in Mbit/s when the link reports one. */
  readonly speedMbps?: number;
  /** No backing hardware (under /sys/devices/virtual). */
  readonly virtual: boolean;
  /**
   * rtnl link kind (IFLA_INFO_KIND: veth, bridge, vxlan, tun, ...), from
   * netlink, or what sysfs shows when netlink is not read; absent for a
   * physical NIC or a VF, and when sysfs cannot tell.
   */
  readonly kind?: string;
  /** Netdev driver when it differs from the PCI driver (virtio_net under virtio-pci). */
  readonly netDriver?: string;
  /** The interface this one is enslaved to (bridge, bond, VRF). */
  readonly master?: string;
  /** Interfaces this one is stacked on (a VLAN's parent). */
  readonly lowers: readonly string[];
  /** Port number among netdevs sharing one PCI function. */
  readonly devPort: number;
  readonly pci?: PciFacts;
  readonly rdma?: RdmaFacts;
}
