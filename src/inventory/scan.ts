/**
 * One inventory scan: discover, rule out ineligible devices, name them, find
 * their guarded kinds, and apply the selection policy. The result says for
 * every netdev whether it is published and why, which is what `netclaim
 * devices` prints.
 */
import { deviceAttributes, type DeviceAttributes } from "./attributes.ts";
import type { NetDevice } from "./device.ts";
import { discoverNetDevices, type DiscoveryOptions } from "./discover.ts";
import { ineligibleDevices } from "./eligibility.ts";
import { guardedKinds } from "./guard.ts";
import { assignDeviceNames } from "./names.ts";
import { evaluatePolicy, type DevicePolicy } from "./policy.ts";
import { defaultRouteInterfaces } from "./routes.ts";
import { resolveShare, type SharedParent } from "./share.ts";
import type { SysfsRoot } from "./sysfs.ts";

export interface DeviceReport {
  /** DRA device name. */
  readonly name: string;
  readonly device: NetDevice;
  readonly attributes: DeviceAttributes;
  readonly publish: boolean;
  readonly reason: string;
  /** k8s.cni.cncf.io/resourceName of a published device. */
  readonly multusResourceName?: string;
  /** Set when the device is published as a shared parent (pods get children of it); absent for a whole-device NIC. */
  readonly share?: SharedParent;
  /** Kept from an earlier scan because the device is attached to a pod. */
  readonly attached: boolean;
}

export interface InventorySnapshot {
  /** Every netdev seen, sorted by device name. */
  readonly reports: readonly DeviceReport[];
}

export function publishedDevices(snapshot: InventorySnapshot): DeviceReport[] {
  return snapshot.reports.filter((r) => r.publish);
}

export async function scanInventory(sysfs: SysfsRoot, policy: DevicePolicy, options: DiscoveryOptions = {}): Promise<InventorySnapshot> {
  const [devices, uplinks] = await Promise.all([discoverNetDevices(sysfs, options), defaultRouteInterfaces(sysfs)]);
  return { reports: reportDevices(devices, uplinks, policy) };
}

/**
 * Each device's attributes, made once per device: a scan that link events
 * asked for keeps every other device's NetDevice from the scan before, so
 * their attributes are the same objects as before too, and comparing the new
 * snapshot with the old one stops at them.
 */
const attributesByDevice = new WeakMap<NetDevice, DeviceAttributes>();

function attributesOf(device: NetDevice): DeviceAttributes {
  let attributes = attributesByDevice.get(device);
  if (attributes === undefined) {
    attributes = deviceAttributes(device);
    attributesByDevice.set(device, attributes);
  }
  return attributes;
}

export function reportDevices(
  devices: readonly NetDevice[],
  uplinks: ReadonlySet<string>,
  policy: DevicePolicy,
): DeviceReport[] {
  const ineligible = ineligibleDevices(devices, uplinks);
  const names = assignDeviceNames(devices);
  const byName = new Map(devices.map((d) => [d.ifName, d]));
  const reports = devices.map((device): DeviceReport => {
    const name = names.get(device) ?? device.ifName;
    const attributes = attributesOf(device);
    const excluded = ineligible.get(device.ifName);
    if (excluded !== undefined) return { name, device, attributes, publish: false, reason: `never published: ${excluded.reason}`, attached: false };
    const verdict = evaluatePolicy(policy, { ifName: device.ifName, deviceName: name, attributes, guardedKinds: guardedKinds(device, byName) });
    if (!verdict.publish) return { name, device, attributes, publish: false, reason: verdict.reason, attached: false };
    const published = { name, device, attributes, publish: true, reason: verdict.reason, multusResourceName: verdict.multusResourceName, attached: false };
    if (verdict.share === undefined) return published;
    const shared = resolveShare(verdict.share, device);
    if (shared.parent === undefined) return { name, device, attributes, publish: false, reason: `${verdict.reason}, ${shared.problem}`, attached: false };
    return {
      ...published,
      // DeviceClasses tell shared parents from whole devices by this attribute: unlike
      // allowMultipleAllocations, CEL knows it on every release (1.34 refuses that field).
      attributes: { ...attributes, local: { ...attributes.local, sharedParent: true } },
      reason: `${verdict.reason}, ${shared.note}`,
      share: shared.parent,
    };
  });
  return reports.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Devices attached to pods have left the host namespace, so a scan no longer
 * sees their netdev; their last published report is carried over unchanged so
 * the slice keeps describing what the pod holds.
 */
export function carryAttached(
  fresh: readonly DeviceReport[],
  previous: readonly DeviceReport[],
  attached: ReadonlySet<string>,
): DeviceReport[] {
  const seen = new Set(fresh.map((r) => r.name));
  const carried = previous
    .filter((r) => r.publish && attached.has(r.name) && !seen.has(r.name))
    .map((r) => ({ ...r, attached: true, reason: "attached to a pod (attributes from before it moved)" }));
  if (carried.length === 0) return [...fresh];
  return [...fresh, ...carried].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
