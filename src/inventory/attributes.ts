/**
 * Device attributes as published, before they are qualified with the driver
 * name. Names mirror dranet's (dra.net/<name>) where the meaning is the same,
 * so DeviceClass CEL ports across drivers; the rest are netclaim's own. The
 * standard resource.kubernetes.io attributes are kept apart because they are
 * published under their own domain.
 *
 * Limits (resource.k8s.io/v1 validation): at most 32 attributes plus
 * capacities per device, string values at most 64 bytes. A device publishes
 * at most 24 local + 3 standard + 2 Multus attributes; a shared parent adds
 * `sharedParent` (scan.ts) and 2 capacities (share.ts).
 */
import type { NetDevice } from "./device.ts";

export type AttributeValue = string | number | boolean;

export interface DeviceAttributes {
  /** Published as <driverName>/<key>. */
  readonly local: Readonly<Record<string, AttributeValue>>;
  /** Published as resource.kubernetes.io/<key>. */
  readonly standard: Readonly<Record<string, AttributeValue>>;
}

export const STANDARD_DOMAIN = "resource.kubernetes.io";

/** What each local attribute means; `netclaim devices` and docs/devices.md print this. */
export const ATTRIBUTE_REFERENCE: Readonly<Record<string, string>> = {
  ifName: "host interface name (string; dranet: ifName)",
  mac: "permanent or current MAC address (string; dranet: mac)",
  mtu: "MTU (int; dranet: mtu)",
  state: "operstate: up, down, lowerlayerdown, unknown (string; dranet: state)",
  encapsulation: "link-layer type: ether, infiniband, ... (string; dranet: encapsulation)",
  speed: "link speed in Mbit/s when the link reports one (int)",
  virtual: "no backing hardware, e.g. veth, dummy, bridge (bool; dranet: virtual)",
  pciAddress: "PCI address of the function, 0000:3b:00.0 (string; dranet: pciAddress)",
  pciVendorID: "PCI vendor id, four hex digits, 15b3 (string)",
  pciDeviceID: "PCI device id, four hex digits, 101d (string)",
  pciSubsystemID: "PCI subsystem vendor:device, 15b3:0016 (string)",
  driver: "kernel driver of the PCI function, or of the netdev when it has none (string)",
  numaNode: "deprecated, use resource.kubernetes.io/numaNode: NUMA node of the PCI function (int; dranet: numaNode)",
  sriov: "a physical function that can create SR-IOV VFs (bool; dranet: sriov)",
  sriovVfs: "number of VFs currently enabled on the PF (int; dranet: sriovVfs)",
  sriovTotalVfs: "number of VFs the PF supports (int)",
  isSriovVf: "an SR-IOV virtual function (bool; dranet: isSriovVf)",
  sriovPfAddress: "PCI address of a VF's physical function (string)",
  sriovVfIndex: "index of a VF on its PF, N of virtfnN (int)",
  rdma: "has an RDMA device (bool; dranet: rdma)",
  rdmaDevice: "RDMA device name, mlx5_0 (string; dranet: rdmaDevice)",
  sharedParent: "published as a shared parent: pods get child interfaces of it, and it has capacities interfaces and bandwidth (bool, only ever true)",
};

export function deviceAttributes(device: NetDevice): DeviceAttributes {
  const local: Record<string, AttributeValue> = { ifName: device.ifName, virtual: device.virtual };
  const standard: Record<string, AttributeValue> = {};
  if (device.mac !== undefined) local.mac = device.mac;
  if (device.mtu !== undefined) local.mtu = device.mtu;
  if (device.operState !== undefined) local.state = device.operState;
  local.encapsulation = device.linkType;
  if (device.speedMbps !== undefined) local.speed = device.speedMbps;
  const driver = device.pci?.driver ?? device.netDriver;
  if (driver !== undefined) local.driver = driver;
  local.rdma = device.rdma !== undefined;
  if (device.rdma !== undefined) local.rdmaDevice = device.rdma.device;
  const pci = device.pci;
  if (pci !== undefined) {
    local.pciAddress = pci.address;
    local.pciVendorID = pci.vendorID;
    local.pciDeviceID = pci.deviceID;
    if (pci.subsystemVendorID !== undefined && pci.subsystemDeviceID !== undefined) {
      local.pciSubsystemID = `${pci.subsystemVendorID}:${pci.subsystemDeviceID}`;
    }
    standard.pciBusID = pci.address;
    if (pci.numaNode !== undefined) {
      local.numaNode = pci.numaNode;
      standard.numaNode = pci.numaNode;
    }
    if (pci.pcieRoot !== undefined) standard.pcieRoot = pci.pcieRoot;
    local.sriov = pci.sriov !== undefined;
    if (pci.sriov !== undefined) {
      local.sriovVfs = pci.sriov.numVfs;
      local.sriovTotalVfs = pci.sriov.totalVfs;
    }
    local.isSriovVf = pci.vf !== undefined;
    if (pci.vf !== undefined) {
      local.sriovPfAddress = pci.vf.pfAddress;
      local.sriovVfIndex = pci.vf.index;
    }
  }
  return { local, standard };
}
