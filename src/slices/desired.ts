/**
 * The ResourceSlices a node should have, computed from the inventory: one
 * pool named after the node, devices sorted by name and split into slices of
 * at most 128 (the resource.k8s.io/v1 limit; 64 where devices may carry
 * taints, the limit for slices with any), each slice owned by the Node so
 * the garbage collector removes them with it. Slice names are deterministic
 * (<node>-<driver>-<index>) so a deleted slice is recreated under the same
 * name and a restarted agent recognises its own slices.
 */
import { createHash } from "node:crypto";
import { SHARE_CAPACITY, STANDARD_DOMAIN, type AttributeValue, type CapacityRequestPolicy, type DeviceReport, type NetDevice, type SharedParent } from "../inventory/index.ts";
import type { Device, DeviceAttribute, DeviceCapacity, DeviceTaint, OwnerReference, ResourceSlice } from "../kube/index.ts";

export const MAX_DEVICES_PER_SLICE = 128;
/**
 * resource.k8s.io/v1's limit for a slice in which any device has taints. A publisher that may
 * taint devices keeps to it always: a taint then never re-splits the pool.
 */
export const MAX_DEVICES_PER_SLICE_WITH_TAINTS = 64;
const MAX_STRING_BYTES = 64;
export const MULTUS_DOMAIN = "k8s.cni.cncf.io";

export interface PoolIdentity {
  driverName: string;
  nodeName: string;
  /** The Node's uid, for the ownerReference. */
  nodeUID: string;
}

export interface ApiDeviceOptions {
  /**
   * Whether the API server keeps consumable capacity (DRAConsumableCapacity: on from 1.36).
   * Without it a shared parent is published as a whole device: its capacities' values only,
   * which such a server keeps, so the publisher converges instead of rewriting what the
   * server drops.
   */
  consumableCapacity: boolean;
}

/** A published device as the API expects it, with its taints if it has any. */
export function toApiDevice(
  report: DeviceReport,
  driverName: string,
  taints: readonly DeviceTaint[] = [],
  options: ApiDeviceOptions = { consumableCapacity: true },
): Device {
  const attributes: Record<string, DeviceAttribute> = {};
  const put = (name: string, value: AttributeValue): void => {
    const attribute = toAttribute(value);
    if (attribute !== undefined) attributes[name] = attribute;
  };
  for (const [key, value] of Object.entries(report.attributes.local)) put(`${driverName}/${key}`, value);
  for (const [key, value] of Object.entries(report.attributes.standard)) put(`${STANDARD_DOMAIN}/${key}`, value);
  if (report.multusResourceName !== undefined) {
    put(`${MULTUS_DOMAIN}/deviceID`, multusDeviceId(report.device));
    put(`${MULTUS_DOMAIN}/resourceName`, report.multusResourceName);
  }
  return {
    name: report.name,
    attributes: sortKeys(attributes),
    ...(report.share !== undefined && sharedParentFields(report.share, options.consumableCapacity)),
    ...(taints.length > 0 && { taints: [...taints] }),
  };
}

/** A shared parent's capacities, each with the request policy the scheduler charges allocations by. */
function sharedParentFields(share: SharedParent, consumableCapacity: boolean): Pick<Device, "allowMultipleAllocations" | "capacity"> {
  const capacity = (value: string, policy: CapacityRequestPolicy | undefined): DeviceCapacity => ({
    value,
    ...(consumableCapacity && policy !== undefined && { requestPolicy: apiRequestPolicy(policy) }),
  });
  return {
    ...(consumableCapacity && { allowMultipleAllocations: true }),
    capacity: {
      ...(share.bandwidth !== undefined && { [SHARE_CAPACITY.bandwidth]: capacity(share.bandwidth, share.requestPolicy.bandwidth) }),
      [SHARE_CAPACITY.interfaces]: capacity(String(share.interfaces), share.requestPolicy.interfaces),
    },
  };
}

function apiRequestPolicy(policy: CapacityRequestPolicy): NonNullable<DeviceCapacity["requestPolicy"]> {
  return {
    default: policy.default,
    ...(policy.validValues !== undefined && { validValues: [...policy.validValues] }),
    ...(policy.validRange !== undefined && { validRange: { ...policy.validRange } }),
  };
}

/**
 * What Multus hands the CNI plugin as `deviceID` (and `pciBusID`): the PCI address of a PCI
 * function, which host-device and sriov-cni look the netdev up by; a device without one (a
 * virtual link) has only its interface name, which a plugin must take as a name
 * (docs/multus.md).
 */
function multusDeviceId(device: NetDevice): string {
  return device.pci?.address ?? device.ifName;
}

function toAttribute(value: AttributeValue): DeviceAttribute | undefined {
  if (typeof value === "boolean") return { bool: value };
  if (typeof value === "number") return { int: value };
  // A longer value would make the API server reject the whole slice; leave the attribute out.
  return Buffer.byteLength(value) <= MAX_STRING_BYTES ? { string: value } : undefined;
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Devices split into slices of at most `perSlice`; always at least one (possibly empty) so the pool exists. */
export function chunkDevices(devices: readonly Device[], perSlice = MAX_DEVICES_PER_SLICE): Device[][] {
  if (devices.length === 0) return [[]];
  const chunks: Device[][] = [];
  for (let i = 0; i < devices.length; i += perSlice) chunks.push(devices.slice(i, i + perSlice));
  return chunks;
}

export function sliceName(pool: Pick<PoolIdentity, "driverName" | "nodeName">, index: number): string {
  const base = `${pool.nodeName}-${pool.driverName}`;
  // Node and driver names are DNS subdomains of up to 253 and 63 characters; keep the slice name within 253.
  const bounded = base.length <= 230 ? base : `${base.slice(0, 213)}-${createHash("sha256").update(base).digest("hex").slice(0, 16)}`;
  return `${bounded}-${index}`;
}

export function ownerReference(pool: PoolIdentity): OwnerReference {
  return { apiVersion: "v1", kind: "Node", name: pool.nodeName, uid: pool.nodeUID, controller: true };
}

/** The slice at `index` of `count`, at pool generation `generation`. */
export function desiredSlice(pool: PoolIdentity, devices: Device[], index: number, count: number, generation: number): ResourceSlice {
  return {
    apiVersion: "resource.k8s.io/v1",
    kind: "ResourceSlice",
    metadata: { name: sliceName(pool, index), ownerReferences: [ownerReference(pool)] },
    spec: {
      driver: pool.driverName,
      nodeName: pool.nodeName,
      pool: { name: pool.nodeName, generation, resourceSliceCount: count },
      devices,
    },
  };
}
