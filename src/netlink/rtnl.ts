/**
 * rtnetlink messages: pure encoders (request -> bytes) and decoders
 * (reply body -> typed object) for links, addresses and routes. Numbers
 * are from the kernel's uapi headers (linux/rtnetlink.h, if_link.h,
 * if_addr.h, netlink.h), checked against linux-libc-dev on this machine.
 */
import { attr, parseAttributes, Reader, Writer, type Attributes } from "./codec.ts";
import { afOf, bytesToIp, bytesToMac, ipToBytes, macToBytes, AF_INET, AF_INET6, type Family } from "./ip.ts";
import { NetlinkError } from "./errors.ts";

export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
export const NLM_F = {
  REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, DUMP_INTR: 0x10, DUMP: 0x300,
  REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400, CAPPED: 0x100, ACK_TLVS: 0x200,
} as const;
export const RTM = {
  NEWLINK: 16, DELLINK: 17, GETLINK: 18, NEWADDR: 20, DELADDR: 21, GETADDR: 22,
  NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26,
} as const;
export const RTMGRP_LINK = 1;
export const NETLINK_ROUTE = 0;

const IFF_UP = 0x1;
const IFF_LOWER_UP = 0x10000;
const IFLA = {
  ADDRESS: 1, IFNAME: 3, MTU: 4, LINK: 5, MASTER: 10, OPERSTATE: 16, LINKINFO: 18, NET_NS_FD: 28,
  EXT_MASK: 29, NEW_IFINDEX: 49, PERM_ADDRESS: 54, PARENT_DEV_NAME: 56, PARENT_DEV_BUS_NAME: 57,
} as const;
const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
const VETH_INFO_PEER = 1;
const IFLA_MACVLAN_MODE = 1;
const RTEXT_FILTER_SKIP_STATS = 8;
const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4, FLAGS: 8, PROTO: 11 } as const;
/** IFA_F_NODAD: no duplicate address detection, so IPv6 addresses are usable at once. */
export const IFA_F_NODAD = 0x02;
const IFA_F_PERMANENT = 0x80;
const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, METRICS: 8, MULTIPATH: 9, TABLE: 15, PREF: 20 } as const;
export const RT_TABLE = { UNSPEC: 0, COMPAT: 252, MAIN: 254, LOCAL: 255 } as const;
export const RT_SCOPE = { UNIVERSE: 0, LINK: 253, HOST: 254 } as const;
export const RTPROT = { KERNEL: 2, BOOT: 3, RA: 9 } as const;
const RTN_UNICAST = 1;

export interface Link {
  index: number;
  name: string;
  mtu: number;
  /** Current hardware address, lowercase colon-separated; absent for some kinds. */
  mac?: string;
  /** Burned-in address (IFLA_PERM_ADDRESS) when the driver reports one. */
  permanentMac?: string;
  up: boolean;
  /**
   * The physical layer is up (IFF_LOWER_UP): a cable and a link partner, or a veth's peer
   * that is up. Only meaningful while `up`: a link set down reports no carrier.
   */
  carrier: boolean;
  /** rtnl link kind ("veth", "bridge", "macvlan"); absent for physical NICs. */
  kind?: string;
  /** Parent device on its bus (a PCI address for a NIC). */
  parentDevice?: string;
  parentBus?: string;
  masterIndex?: number;
}

export interface LinkChange {
  name?: string;
  mtu?: number;
  mac?: string;
  up?: boolean;
  /** An open network-namespace file descriptor to move the link into. */
  netnsFd?: number;
  /**
   * With `netnsFd`: the ifindex the link must have in the target namespace
   * (IFLA_NEW_IFINDEX); the move fails with EBUSY if it is taken there.
   */
  newIfindex?: number;
}

export interface Address {
  family: Family;
  index: number;
  address: string;
  prefixLength: number;
  /** IPv4 peer/broadcast, only when set. */
  broadcast?: string;
  label?: string;
  scope: number;
  /** IFA_F_* flags (32-bit). */
  flags: number;
  /** Who made it (IFA_PROTO): 0 unknown/user, 1 loopback, 2 RA, 3 link-local. */
  proto?: number;
}

export interface Route {
  family: Family;
  table: number;
  dst?: string;
  dstLength: number;
  gateway?: string;
  prefsrc?: string;
  oif?: number;
  priority?: number;
  protocol: number;
  scope: number;
  type: number;
  /** IPv6 router preference (RTA_PREF). */
  pref?: number;
  /** RTA_METRICS passed through as hex so a restore re-creates them exactly. */
  metricsHex?: string;
  /** Multipath routes are reported but not restorable one device at a time. */
  multipath?: boolean;
}

export const MACVLAN_MODES = ["private", "vepa", "bridge", "passthru"] as const;
export const IPVLAN_MODES = ["l2", "l3", "l3s"] as const;
export type MacvlanMode = (typeof MACVLAN_MODES)[number];
export type IpvlanMode = (typeof IPVLAN_MODES)[number];

/** What a new child of a parent link may set in the same request that creates it. */
export interface NewChildSettings {
  /** The parent's ifindex in the namespace the request is sent in. */
  parentIndex: number;
  mtu?: number;
  mac?: string;
  /** Created up (IFF_UP), which saves a request when nothing must be set first. */
  up?: boolean;
  /**
   * With `netnsFd`: the ifindex the link must have there (the request's
   * ifi_index); the create fails with EBUSY when it is taken.
   */
  index?: number;
  /** An open network-namespace descriptor to create the link in, rather than the socket's. */
  netnsFd?: number;
}

export type NewLinkSpec =
  | { kind: "veth"; name: string; peerName: string }
  | { kind: "bridge"; name: string }
  | ({ kind: "macvlan"; name: string; mode?: MacvlanMode } & NewChildSettings)
  /** L2 mode by default, as the kernel's. */
  | ({ kind: "ipvlan"; name: string; mode?: IpvlanMode } & NewChildSettings);

/** MACVLAN_MODE_* and IPVLAN_MODE_* of <linux/if_link.h>. */
const MACVLAN_MODE: Record<MacvlanMode, number> = { private: 1, vepa: 2, bridge: 4, passthru: 8 };
const IPVLAN_MODE: Record<IpvlanMode, number> = { l2: 0, l3: 1, l3s: 2 };
const IFLA_IPVLAN_MODE = 1;

function ifinfomsg(w: Writer, index: number, flags: number, change: number): Writer {
  return w.u8(0).u8(0).u16(0).i32(index).u32(flags).u32(change);
}

export function encodeGetLink(seq: number, key: { index: number } | { name: string }): Uint8Array {
  const w = new Writer().message(RTM.GETLINK, NLM_F.REQUEST | NLM_F.ACK, seq);
  ifinfomsg(w, "index" in key ? key.index : 0, 0, 0);
  if ("name" in key) w.attrString(IFLA.IFNAME, key.name);
  w.attrU32(IFLA.EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return w.join().finish();
}

export function encodeDumpLinks(seq: number): Uint8Array {
  const w = new Writer().message(RTM.GETLINK, NLM_F.REQUEST | NLM_F.DUMP, seq);
  ifinfomsg(w, 0, 0, 0).attrU32(IFLA.EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return w.join().finish();
}

/**
 * One RTM_NEWLINK that applies every field of `change`. With `netnsFd`
 * and `name` the kernel moves and renames in one step, so the device never
 * appears in the pod under its host name (which might collide).
 */
export function encodeSetLink(seq: number, index: number, change: LinkChange): Uint8Array {
  const w = new Writer().message(RTM.NEWLINK, NLM_F.REQUEST | NLM_F.ACK, seq);
  const upChange = change.up === undefined ? 0 : IFF_UP;
  ifinfomsg(w, index, change.up === true ? IFF_UP : 0, upChange);
  if (change.netnsFd !== undefined) w.attrU32(IFLA.NET_NS_FD, change.netnsFd);
  if (change.newIfindex !== undefined) w.attrI32(IFLA.NEW_IFINDEX, change.newIfindex);
  if (change.name !== undefined) w.attrString(IFLA.IFNAME, change.name);
  if (change.mtu !== undefined) w.attrU32(IFLA.MTU, change.mtu);
  if (change.mac !== undefined) w.attrBytes(IFLA.ADDRESS, macToBytes(change.mac));
  return w.join().finish();
}

/**
 * RTM_NEWLINK that creates a link. A macvlan or ipvlan child names its
 * parent in the sending socket's namespace and, with `netnsFd`, is created
 * straight in another one (a pod's): it never exists on the host, and
 * name, MTU, MAC and up state ride in the same request.
 */
export function encodeNewLink(seq: number, spec: NewLinkSpec): Uint8Array {
  const w = new Writer().message(RTM.NEWLINK, NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL, seq);
  const child = spec.kind === "macvlan" || spec.kind === "ipvlan" ? spec : undefined;
  ifinfomsg(w, child?.index ?? 0, child?.up === true ? IFF_UP : 0, child?.up === true ? IFF_UP : 0).attrString(IFLA.IFNAME, spec.name);
  if (child !== undefined) {
    w.attrU32(IFLA.LINK, child.parentIndex);
    if (child.netnsFd !== undefined) w.attrU32(IFLA.NET_NS_FD, child.netnsFd);
    if (child.mtu !== undefined) w.attrU32(IFLA.MTU, child.mtu);
    if (child.mac !== undefined) w.attrBytes(IFLA.ADDRESS, macToBytes(child.mac));
  }
  w.nest(IFLA.LINKINFO).attrString(IFLA_INFO.KIND, spec.kind);
  if (spec.kind === "veth") {
    w.nest(IFLA_INFO.DATA).nest(VETH_INFO_PEER);
    ifinfomsg(w, 0, 0, 0).attrString(IFLA.IFNAME, spec.peerName);
    w.join().join();
  } else if (spec.kind === "macvlan") {
    w.nest(IFLA_INFO.DATA).attrU32(IFLA_MACVLAN_MODE, MACVLAN_MODE[spec.mode ?? "bridge"]).join();
  } else if (spec.kind === "ipvlan") {
    w.nest(IFLA_INFO.DATA).attrU16(IFLA_IPVLAN_MODE, IPVLAN_MODE[spec.mode ?? "l2"]).join();
  }
  return w.join().join().finish();
}

export function encodeDeleteLink(seq: number, index: number): Uint8Array {
  const w = new Writer().message(RTM.DELLINK, NLM_F.REQUEST | NLM_F.ACK, seq);
  return ifinfomsg(w, index, 0, 0).join().finish();
}

/** The attributes decodeLink reads. */
const LINK_ATTRIBUTES: ReadonlySet<number> = new Set([
  IFLA.IFNAME, IFLA.MTU, IFLA.ADDRESS, IFLA.PERM_ADDRESS, IFLA.LINKINFO, IFLA.PARENT_DEV_NAME, IFLA.PARENT_DEV_BUS_NAME, IFLA.MASTER,
]);

export function decodeLink(body: Uint8Array): Link {
  const r = new Reader(body);
  r.u8("ifi_family");
  r.u8("ifi_pad");
  r.u16("ifi_type");
  const index = r.i32("ifi_index");
  const flags = r.u32("ifi_flags");
  r.u32("ifi_change");
  const a = parseAttributes(r.rest(), LINK_ATTRIBUTES);
  const name = attr.string(a, IFLA.IFNAME);
  const mtu = attr.u32(a, IFLA.MTU, "IFLA_MTU");
  if (name === undefined || mtu === undefined) {
    throw new NetlinkError("NETLINK_MALFORMED", `link ${index} reply lacks IFLA_IFNAME or IFLA_MTU`, { device: `ifindex ${index}` });
  }
  const link: Link = { index, name, mtu, up: (flags & IFF_UP) !== 0, carrier: (flags & IFF_LOWER_UP) !== 0 };
  const mac = macOf(a, IFLA.ADDRESS);
  if (mac !== undefined) link.mac = mac;
  const perm = macOf(a, IFLA.PERM_ADDRESS);
  if (perm !== undefined) link.permanentMac = perm;
  const info = a.get(IFLA.LINKINFO);
  if (info !== undefined) {
    const kind = attr.string(parseAttributes(info), IFLA_INFO.KIND);
    if (kind !== undefined) link.kind = kind;
  }
  const parent = attr.string(a, IFLA.PARENT_DEV_NAME);
  if (parent !== undefined) link.parentDevice = parent;
  const bus = attr.string(a, IFLA.PARENT_DEV_BUS_NAME);
  if (bus !== undefined) link.parentBus = bus;
  const master = attr.u32(a, IFLA.MASTER, "IFLA_MASTER");
  if (master !== undefined) link.masterIndex = master;
  return link;
}

function macOf(a: Attributes, type: number): string | undefined {
  const v = a.get(type);
  // Only Ethernet-style 6-byte addresses; an all-zero one means "none".
  if (v?.length !== 6 || v.every((b) => b === 0)) return undefined;
  return bytesToMac(v);
}

export interface AddressSpec {
  index: number;
  address: string;
  prefixLength: number;
  family: Family;
  broadcast?: string;
  label?: string;
  scope?: number;
  flags?: number;
}

/** An add creates or replaces (so repeating it is harmless); a delete is a plain acked request. */
function changeFlags(op: "add" | "delete"): number {
  return op === "add" ? NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.REPLACE : NLM_F.REQUEST | NLM_F.ACK;
}

/** Adds (or, with replace semantics, re-adds idempotently) or deletes an address. */
export function encodeAddress(seq: number, op: "add" | "delete", spec: AddressSpec): Uint8Array {
  const flags = changeFlags(op);
  const w = new Writer().message(op === "add" ? RTM.NEWADDR : RTM.DELADDR, flags, seq);
  const ifaFlags = spec.flags ?? 0;
  w.u8(afOf(spec.family)).u8(spec.prefixLength).u8(ifaFlags & 0xff).u8(spec.scope ?? 0).u32(spec.index);
  const bytes = ipToBytes(spec.address);
  w.attrBytes(IFA.LOCAL, bytes).attrBytes(IFA.ADDRESS, bytes);
  if (spec.broadcast !== undefined) w.attrBytes(IFA.BROADCAST, ipToBytes(spec.broadcast));
  if (spec.label !== undefined) w.attrString(IFA.LABEL, spec.label);
  if (op === "add") w.attrU32(IFA.FLAGS, ifaFlags);
  return w.join().finish();
}

/**
 * Dumps addresses of both families; with `index`, the kernel returns only
 * that device's (sockets set NETLINK_GET_STRICT_CHK, which makes the kernel
 * honour the filter instead of ignoring it).
 */
export function encodeDumpAddresses(seq: number, index = 0): Uint8Array {
  const w = new Writer().message(RTM.GETADDR, NLM_F.REQUEST | NLM_F.DUMP, seq);
  return w.u8(0).u8(0).u8(0).u8(0).u32(index).join().finish();
}

export function decodeAddress(body: Uint8Array): Address {
  const r = new Reader(body);
  const af = r.u8("ifa_family");
  const prefixLength = r.u8("ifa_prefixlen");
  const smallFlags = r.u8("ifa_flags");
  const scope = r.u8("ifa_scope");
  const index = r.u32("ifa_index");
  const family = familyOfAf(af, "address");
  const a = parseAttributes(r.rest());
  const raw = a.get(IFA.LOCAL) ?? a.get(IFA.ADDRESS);
  if (raw?.length !== (family === 4 ? 4 : 16)) {
    throw new NetlinkError("NETLINK_MALFORMED", `address reply for ifindex ${index} lacks a valid IFA_LOCAL/IFA_ADDRESS`, { device: `ifindex ${index}` });
  }
  const out: Address = { family, index, address: bytesToIp(raw), prefixLength, scope, flags: attr.u32(a, IFA.FLAGS, "IFA_FLAGS") ?? smallFlags };
  const brd = a.get(IFA.BROADCAST);
  if (brd !== undefined) out.broadcast = bytesToIp(brd);
  const label = attr.string(a, IFA.LABEL);
  if (label !== undefined) out.label = label;
  const proto = attr.u8(a, IFA.PROTO, "IFA_PROTO");
  if (proto !== undefined) out.proto = proto;
  return out;
}

export function isPermanentAddress(a: Address): boolean {
  return (a.flags & IFA_F_PERMANENT) !== 0;
}

export interface RouteSpec {
  family: Family;
  table?: number;
  dst?: string;
  dstLength: number;
  gateway?: string;
  prefsrc?: string;
  oif: number;
  priority?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  pref?: number;
  metricsHex?: string;
}

/**
 * RTM_NEWROUTE (create-or-replace, so re-running is harmless) or
 * RTM_DELROUTE. Tables above 255 do not fit rtm_table: it carries
 * RT_TABLE_COMPAT and RTA_TABLE the real id, as the kernel expects.
 */
export function encodeRoute(seq: number, op: "add" | "delete", spec: RouteSpec): Uint8Array {
  const flags = changeFlags(op);
  const w = new Writer().message(op === "add" ? RTM.NEWROUTE : RTM.DELROUTE, flags, seq);
  const table = spec.table ?? RT_TABLE.MAIN;
  const scope = spec.scope ?? (spec.gateway === undefined ? RT_SCOPE.LINK : RT_SCOPE.UNIVERSE);
  w.u8(afOf(spec.family)).u8(spec.dstLength).u8(0).u8(0)
    .u8(table > 255 ? RT_TABLE.COMPAT : table).u8(spec.protocol ?? RTPROT.BOOT).u8(scope).u8(spec.type ?? RTN_UNICAST).u32(0);
  w.attrU32(RTA.TABLE, table);
  if (spec.dst !== undefined) w.attrBytes(RTA.DST, ipToBytes(spec.dst));
  if (spec.gateway !== undefined) w.attrBytes(RTA.GATEWAY, ipToBytes(spec.gateway));
  if (spec.prefsrc !== undefined) w.attrBytes(RTA.PREFSRC, ipToBytes(spec.prefsrc));
  w.attrU32(RTA.OIF, spec.oif);
  if (spec.priority !== undefined) w.attrU32(RTA.PRIORITY, spec.priority);
  if (spec.pref !== undefined) w.attrU8(RTA.PREF, spec.pref);
  if (spec.metricsHex !== undefined) w.attrBytes(RTA.METRICS, Uint8Array.from(Buffer.from(spec.metricsHex, "hex")));
  return w.join().finish();
}

/** Dumps routes of every table; with `oif`, only those through that device (strict checking). */
/** A route dump; without `family`, of IPv4 and IPv6 (and any other family the kernel has) at once. */
export function encodeDumpRoutes(seq: number, family: Family | undefined, oif?: number): Uint8Array {
  const w = new Writer().message(RTM.GETROUTE, NLM_F.REQUEST | NLM_F.DUMP, seq);
  w.u8(family === undefined ? 0 : afOf(family)).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0).u32(0);
  if (oif !== undefined) w.attrU32(RTA.OIF, oif);
  return w.join().finish();
}

export function decodeRoute(body: Uint8Array): Route {
  const r = new Reader(body);
  const af = r.u8("rtm_family");
  const dstLength = r.u8("rtm_dst_len");
  r.u8("rtm_src_len");
  r.u8("rtm_tos");
  const smallTable = r.u8("rtm_table");
  const protocol = r.u8("rtm_protocol");
  const scope = r.u8("rtm_scope");
  const type = r.u8("rtm_type");
  r.u32("rtm_flags");
  const family = familyOfAf(af, "route");
  const a = parseAttributes(r.rest());
  const route: Route = { family, table: attr.u32(a, RTA.TABLE, "RTA_TABLE") ?? smallTable, dstLength, protocol, scope, type };
  const ip = (t: number): string | undefined => {
    const v = a.get(t);
    return v === undefined ? undefined : bytesToIp(v);
  };
  const dst = ip(RTA.DST);
  if (dst !== undefined) route.dst = dst;
  const gw = ip(RTA.GATEWAY);
  if (gw !== undefined) route.gateway = gw;
  const src = ip(RTA.PREFSRC);
  if (src !== undefined) route.prefsrc = src;
  const oif = attr.u32(a, RTA.OIF, "RTA_OIF");
  if (oif !== undefined) route.oif = oif;
  const prio = attr.u32(a, RTA.PRIORITY, "RTA_PRIORITY");
  if (prio !== undefined) route.priority = prio;
  const pref = attr.u8(a, RTA.PREF, "RTA_PREF");
  if (pref !== undefined) route.pref = pref;
  const metrics = a.get(RTA.METRICS);
  if (metrics !== undefined && metrics.length > 0) route.metricsHex = Buffer.from(metrics).toString("hex");
  if (a.has(RTA.MULTIPATH)) route.multipath = true;
  return route;
}

function familyOfAf(af: number, what: string): Family {
  if (af === AF_INET) return 4;
  if (af === AF_INET6) return 6;
  throw new NetlinkError("NETLINK_MALFORMED", `${what} reply has address family ${af}, expected AF_INET or AF_INET6`);
}
