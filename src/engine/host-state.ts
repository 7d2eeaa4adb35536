/**
 * What "the device as it was on the host" means, and how to find a device
 * again by identity after moves, renames and netns teardown.
 */
import { type Address, type AddressSpec, type Link, type Route, type RouteSpec } from "../netlink/index.ts";
import type { HostState, JournalRecord } from "./journal.ts";
import type { AttachmentPlan, DeviceIdentity } from "./plan.ts";

const IFA_PROTO_KERNEL = new Set([1, 2, 3]);
const IFA_F_PERMANENT = 0x80;
/** Address flags a user may set (IFA_F_NODAD, HOMEADDRESS, MANAGETEMPADDR, NOPREFIXROUTE, MCAUTOJOIN). */
const SETTABLE_IFA_FLAGS = 0x02 | 0x10 | 0x100 | 0x200 | 0x400;

/**
 * The host state to restore later. Addresses and routes the kernel makes by
 * itself (link-local addresses here; prefix and local-table routes, which
 * linkState never returns) are left out: the kernel re-creates them when
 * the address is added and the link comes up, and adding them by hand
 * would duplicate them.
 */
export function captureHostState(link: Link, addresses: readonly Address[], routes: readonly Route[]): HostState {
  return {
    name: link.name,
    ifindex: link.index,
    mtu: link.mtu,
    ...(link.mac !== undefined && { mac: link.mac }),
    ...(link.permanentMac !== undefined && { permanentMac: link.permanentMac }),
    ...(link.parentDevice !== undefined && { parentDevice: link.parentDevice }),
    ...(link.kind !== undefined && { kind: link.kind }),
    up: link.up,
    addresses: addresses.filter(
      (a) => a.index === link.index && (a.flags & IFA_F_PERMANENT) !== 0 && !IFA_PROTO_KERNEL.has(a.proto ?? 0),
    ),
    // linkState leaves the kernel's own routes out already.
    routes: routes.filter((r) => r.oif === link.index && r.multipath !== true),
  };
}

export function addressSpecFor(a: HostState["addresses"][number], index: number): AddressSpec {
  return {
    index,
    family: a.family,
    address: a.address,
    prefixLength: a.prefixLength,
    scope: a.scope,
    flags: a.flags & SETTABLE_IFA_FLAGS,
    ...(a.broadcast !== undefined && { broadcast: a.broadcast }),
    ...(a.label !== undefined && { label: a.label }),
  };
}

export function routeSpecFor(r: HostState["routes"][number], oif: number): RouteSpec {
  return {
    family: r.family,
    table: r.table,
    dstLength: r.dstLength,
    oif,
    protocol: r.protocol,
    scope: r.scope,
    type: r.type,
    ...(r.dst !== undefined && { dst: r.dst }),
    ...(r.gateway !== undefined && { gateway: r.gateway }),
    ...(r.prefsrc !== undefined && { prefsrc: r.prefsrc }),
    ...(r.priority !== undefined && { priority: r.priority }),
    ...(r.pref !== undefined && { pref: r.pref }),
    ...(r.metricsHex !== undefined && { metricsHex: r.metricsHex }),
  };
}

/** The host link a plan's identity names, before anything moved; all given fields must agree. */
export function findPlannedDevice(links: readonly Link[], id: DeviceIdentity): Link | undefined {
  return links.find(
    (l) =>
      (id.pciAddress === undefined || l.parentDevice === id.pciAddress) &&
      (id.permanentMac === undefined || l.permanentMac === id.permanentMac) &&
      (id.ifindex === undefined || l.index === id.ifindex) &&
      (id.name === undefined || l.name === id.name),
  );
}

/**
 * Finds the recorded device among `links` (the pod's or the host's) after
 * it may have been moved, renamed or handed back by the kernel. A PCI
 * address or burned-in MAC decides alone; without them (virtual devices),
 * the device is the one of the same kind with its host or pod MAC,
 * preferring the recorded ifindex or the pod-side name.
 */
export function findRecordedDevice(links: readonly Link[], host: HostState, plan: AttachmentPlan): Link | undefined {
  if (host.parentDevice !== undefined) return links.find((l) => l.parentDevice === host.parentDevice);
  if (host.permanentMac !== undefined) return links.find((l) => l.permanentMac === host.permanentMac);
  const macs = new Set([host.mac, plan.mac].filter((m) => m !== undefined));
  const candidates = links.filter((l) => l.kind === host.kind && l.mac !== undefined && macs.has(l.mac));
  if (candidates.length <= 1) return candidates[0];
  return candidates.find((l) => l.index === host.ifindex) ?? candidates.find((l) => l.name === plan.podName);
}

/**
 * Finds the attachment's interface among a pod's links: the recorded
 * device (findRecordedDevice), or for a child the link of the child's kind
 * with its planned MAC, else its pod-side name (a child has no identity
 * of its own from before the pod).
 */
export function findInPod(links: readonly Link[], { plan, host }: JournalRecord): Link | undefined {
  const { child } = plan;
  if (child === undefined) return findRecordedDevice(links, host, plan);
  const ofKind = links.filter((l) => l.kind === child.kind);
  return (plan.mac === undefined ? undefined : ofKind.find((l) => l.mac === plan.mac)) ?? ofKind.find((l) => l.name === plan.podName);
}
