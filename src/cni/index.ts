/**
 * cni/: running CNI plugins per the CNI spec (today: IPAM plugins from a
 * NetworkAttachmentDefinition, for native-mode devices).
 */
export { CniError, type CniErrorCode } from "./errors.ts";
export { execCniPlugin, type CniCommand, type CniInvocation } from "./exec.ts";
export { allocateIpam, ipamConfigFromNad, releaseIpam, type IpamLease, type IpamOptions } from "./ipam.ts";
export { parseCniResult, type CniResult } from "./result.ts";
