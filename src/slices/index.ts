/**
 * slices/: the node's ResourceSlices, computed from the inventory and
 * reconciled against the API server continuously.
 */
export { MAX_DEVICES_PER_SLICE, MAX_DEVICES_PER_SLICE_WITH_TAINTS, MULTUS_DOMAIN, chunkDevices, desiredSlice, sliceName, toApiDevice } from "./desired.ts";
export type { ApiDeviceOptions, PoolIdentity } from "./desired.ts";
export { planSlices } from "./plan.ts";
export type { SlicePlan } from "./plan.ts";
export { SlicePublishError, SlicePublisher, publishedApiDevices } from "./publisher.ts";
export type { DeviceSource, DeviceTaintSource, SlicePublisherOptions } from "./publisher.ts";
