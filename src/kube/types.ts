/**
 * The API object shapes netclaim reads and writes, as JSON (resource.k8s.io/v1
 * and core/v1). Only the fields netclaim uses are typed; objects read from
 * the server are checked at the boundary by `isKubeObject`.
 */

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

/** Exactly one member set. */
export type DeviceAttribute = { string: string } | { int: number } | { bool: boolean } | { version: string };

export interface Device {
  name: string;
  attributes?: Record<string, DeviceAttribute>;
  capacity?: Record<string, DeviceCapacity>;
  /**
   * Several claims may be allocated the device at once, each consuming part of its capacity.
   * Kubernetes 1.36+ (DRAConsumableCapacity; alpha before): older API servers drop the field,
   * and every capacity's requestPolicy with it.
   */
  allowMultipleAllocations?: boolean;
  /** Kubernetes 1.36+ (DRADeviceTaints); older API servers drop the field. */
  taints?: DeviceTaint[];
}

/** Quantities are strings as the API writes them; compare them by value (quantity.ts). */
export interface DeviceCapacity {
  value: string;
  /** Only with allowMultipleAllocations. */
  requestPolicy?: CapacityRequestPolicy;
}

export interface CapacityRequestPolicy {
  /** What an allocation that asks for none of this capacity consumes. */
  default?: string;
  /** At most 10, ascending; exclusive with validRange. */
  validValues?: string[];
  validRange?: { min: string; max?: string; step?: string };
}

export interface DeviceTaint {
  key: string;
  value?: string;
  effect: "NoSchedule" | "NoExecute" | "None";
  /** Set by the API server when a write leaves it out. */
  timeAdded?: string;
}

export interface ResourcePool {
  name: string;
  generation: number;
  resourceSliceCount: number;
}

export interface ResourceSliceSpec {
  driver: string;
  pool: ResourcePool;
  nodeName?: string;
  devices?: Device[];
}

export interface ResourceSlice extends KubeObject {
  spec: ResourceSliceSpec;
}

export interface Node extends KubeObject {
  spec?: unknown;
}

export interface ObjectList<T> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

export function isKubeObject(value: unknown): value is KubeObject {
  if (typeof value !== "object" || value === null) return false;
  const metadata = (value as { metadata?: unknown }).metadata;
  return typeof metadata === "object" && metadata !== null;
}
