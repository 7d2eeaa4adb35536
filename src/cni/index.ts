/**
 * cni/: running CNI plugins per the CNI spec (today: IPAM plugins from a
 * NetworkAttachmentDefinition, for native-mode devices), within the node's
 * IPAM policy and in a network namespace of netclaim's own.
 */
export { CniError, type CniErrorCode } from "./errors.ts";
export { execCniPlugin, isPluginType, MAX_STDERR_BYTES, MAX_STDOUT_BYTES, type CniCommand, type CniInvocation } from "./exec.ts";
export { IpamRunner, type IpamConfig, type IpamLease, type IpamRunnerOptions } from "./ipam.ts";
export { MAX_IPAM_CONFIG_DEPTH, UNWORKABLE_IPAM_TYPES, type IpamPolicy } from "./ipam-policy.ts";
export { IpamSandbox } from "./ipam-sandbox.ts";
export type { LeftoverPlugin } from "./leftover-plugins.ts";
export { parseCniResult, type CniResult } from "./result.ts";
