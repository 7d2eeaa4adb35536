/**
 * netlink/: in-process rtnetlink and RDMA netlink over koffi syscalls. All
 * blocking kernel work runs on worker threads; the API here is async.
 */
export { NetlinkClient } from "./client.ts";
export { LocalNetlink } from "./local.ts";
export { NetlinkError, type NetlinkErrorCode, type NetlinkErrorContext, type NetlinkErrorWire } from "./errors.ts";
export { linkEventSource, subscribeLinkEvents, type LinkEvent, type LinkSubscription } from "./events.ts";
export { batchIn } from "./ops.ts";
export { linkKindAvailable } from "./link-kinds.ts";
export type { BatchRunner, InterfaceSysctl, LinkState, LinkUpdate, Op, OpTimesListener, PlacedOp, Results, ResultOf } from "./ops.ts";
export type { RdmaDevice, RdmaNetnsMode } from "./rdma.ts";
export {
  IFA_F_NODAD, IPVLAN_MODES, isPermanentAddress, MACVLAN_MODES, RT_SCOPE, RT_TABLE, RTPROT,
  type Address, type IpvlanMode, type MacvlanMode, type AddressSpec, type Link, type NewLinkSpec, type Route, type RouteSpec,
} from "./rtnl.ts";
export { canonicalIp, cidrParts, familyOf, networkOf, type Family } from "./ip.ts";
