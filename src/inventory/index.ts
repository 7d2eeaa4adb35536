/**
 * inventory/: what network devices this node has and which of them netclaim
 * publishes. Discovery reads sysfs and procfs under a configurable root, and
 * link kinds from netlink on a node; netlink link events trigger debounced
 * rescans.
 */
export { ATTRIBUTE_REFERENCE, STANDARD_DOMAIN, deviceAttributes } from "./attributes.ts";
export type { AttributeValue, DeviceAttributes } from "./attributes.ts";
export type { NetDevice, PciFacts, RdmaFacts } from "./device.ts";
export { DiscoveryError, discoverNetDevices } from "./discover.ts";
export type { DiscoveryOptions, EarlierDiscovery } from "./discover.ts";
export { Inventory } from "./inventory.ts";
export { netlinkLinkKinds, type LinkKinds, type LinkKindSource } from "./link-kinds.ts";
export type { AttachedDevices, InventoryOptions, LinkEventSource, SnapshotListener, Timers } from "./inventory.ts";
export { deviceName, isDnsLabel } from "./names.ts";
export { devicePolicySchema, deviceSelectorSchema, evaluatePolicy, includeRuleSchema } from "./policy.ts";
export type { DevicePolicy, DeviceSelector, IncludeRule } from "./policy.ts";
export { describeDevices } from "./describe.ts";
export { DEFAULT_BANDWIDTH_STEP, SHARE_CAPACITY, resolveShare, shareSchema } from "./share.ts";
export type { CapacityRequestPolicy, SharedParent, ShareRule } from "./share.ts";
export { publishedDevices, scanInventory } from "./scan.ts";
export type { DeviceReport, InventorySnapshot } from "./scan.ts";
export { rdmaCharNodes, type RdmaCharNode } from "./rdma-nodes.ts";
export { SysfsRoot } from "./sysfs.ts";
