/**
 * kube/: access to the Kubernetes API. Credentials from a kubeconfig or the
 * pod's service account; JSON requests and watches over one
 * keep-alive connection, counted; supervised informers that never give up.
 */
export { KubeClient, RequestCounter } from "./client.ts";
export { agentCredentials, kubeconfigCredentials, withToken } from "./credentials.ts";
export type { ApiCredentials } from "./credentials.ts";
export type { KubeClientOptions, Query, RequestOptions, WatchStream } from "./client.ts";
export { KubeApiError, isConflict, isGone, isNotFound, unlessNotFound } from "./errors.ts";
export type { KubeErrorCode } from "./errors.ts";
export { Informer } from "./informer.ts";
export type { InformerOptions } from "./informer.ts";
export {
  RESOURCE_SLICES_PATH,
  createResourceSlice,
  deleteResourceSlice,
  getNode,
  listResourceSlices,
  getServerVersion,
  ownSlicesFieldSelector,
  replaceResourceSlice,
} from "./resources.ts";
export type { ServerVersion } from "./resources.ts";
export type { CapacityRequestPolicy, Device, DeviceAttribute, DeviceCapacity, DeviceTaint, KubeObject, Node, ObjectMeta, OwnerReference, ResourcePool, ResourceSlice, ResourceSliceSpec } from "./types.ts";
export { formatDecimalQuantity, parseQuantity, quantityKey, wholeQuantity } from "./quantity.ts";
export type { QuantityValue } from "./quantity.ts";
export { applyResourceClaimStatus, getResourceClaim, parseResourceClaim, resourceClaimSchema } from "./resource-claims.ts";
export type { ClaimDeviceStatus, ResourceClaim } from "./resource-claims.ts";
export { getNetworkAttachmentDefinition } from "./network-attachment-definitions.ts";
export type { NetworkAttachmentDefinition } from "./network-attachment-definitions.ts";
export { getPodMetadata, getPodWithClaims, patchPodAnnotations } from "./pods.ts";
export type { PodMetadata } from "./pods.ts";
export { createEvent } from "./events.ts";
export type { EventTarget } from "./events.ts";
