/**
 * What to write to make the observed slices match the desired devices, and
 * nothing when they already match (zero writes at steady state, and after a
 * restart with an unchanged inventory).
 *
 * Pool generations (resource.k8s.io/v1): the scheduler uses only the slices
 * of a pool's highest generation, and only once it sees resourceSliceCount
 * of them. So:
 * - one slice differs or is missing, and the pool is otherwise consistent:
 *   rewrite just that slice at the current generation;
 * - anything more (several slices change, the slice count changes, stray or
 *   mixed-generation slices): write every slice at generation + 1, then
 *   delete the strays, so the scheduler switches from one complete pool to
 *   the next and never mixes them.
 */
import { isDeepStrictEqual } from "node:util";
import { chunkDevices, desiredSlice, MAX_DEVICES_PER_SLICE, ownerReference, type PoolIdentity } from "./desired.ts";
import { quantityKey, type Device, type DeviceCapacity, type DeviceTaint, type ResourceSlice } from "../kube/index.ts";

export interface SlicePlan {
  readonly generation: number;
  /** Slices to create (no resourceVersion) or replace (with the observed resourceVersion). */
  readonly writes: readonly ResourceSlice[];
  /** Slices to delete after the writes, with the resourceVersion they were seen at. */
  readonly deletes: readonly { readonly name: string; readonly resourceVersion: string | undefined }[];
}

/** `perSlice`: at most this many devices in a slice (desired.ts). */
export function planSlices(pool: PoolIdentity, devices: readonly Device[], observed: readonly ResourceSlice[], perSlice = MAX_DEVICES_PER_SLICE): SlicePlan {
  const ours = observed.filter((s) => s.spec.driver === pool.driverName && s.spec.nodeName === pool.nodeName);
  const inPool = ours.filter((s) => s.spec.pool.name === pool.nodeName);
  const strays = ours.filter((s) => s.spec.pool.name !== pool.nodeName);
  const generation = Math.max(0, ...inPool.map((s) => s.spec.pool.generation));
  const chunks = chunkDevices(devices, perSlice);
  const desired = chunks.map((chunk, i) => desiredSlice(pool, chunk, i, chunks.length, generation));
  const byName = new Map(inPool.map((s) => [s.metadata.name ?? "", s]));
  const changed = desired.filter((d) => !matches(d, byName.get(d.metadata.name ?? ""), pool));
  const desiredNames = new Set(desired.map((d) => d.metadata.name));
  const extras = [...inPool.filter((s) => !desiredNames.has(s.metadata.name)), ...strays];
  if (changed.length === 0 && extras.length === 0) return { generation, writes: [], deletes: [] };

  const consistent = inPool.every((s) => s.spec.pool.generation === generation);
  if (changed.length === 1 && extras.length === 0 && consistent) {
    return { generation, writes: changed.map((d) => withVersion(d, byName)), deletes: [] };
  }
  const next = generation + 1;
  return {
    generation: next,
    writes: chunks.map((chunk, i) => withVersion(desiredSlice(pool, chunk, i, chunks.length, next), byName)),
    deletes: extras.map((s) => ({ name: s.metadata.name ?? "", resourceVersion: s.metadata.resourceVersion })),
  };
}

/** `slice` to write over the observed one of its name: its resourceVersion, and its taints' times. */
function withVersion(slice: ResourceSlice, observed: ReadonlyMap<string, ResourceSlice>): ResourceSlice {
  const current = observed.get(slice.metadata.name ?? "");
  if (current?.metadata.resourceVersion === undefined) return slice;
  return { ...slice, metadata: { ...slice.metadata, resourceVersion: current.metadata.resourceVersion }, spec: keepTaintTimes(slice.spec, current.spec) };
}

/**
 * The API server stamps a taint written without a time with the time of the write: a taint
 * that was already there keeps the time it was first seen.
 */
function keepTaintTimes(spec: ResourceSlice["spec"], current: ResourceSlice["spec"]): ResourceSlice["spec"] {
  const times = new Map<string, string>();
  for (const device of current.devices ?? []) {
    for (const taint of device.taints ?? []) if (taint.timeAdded !== undefined) times.set(taintId(device.name, taint), taint.timeAdded);
  }
  if (times.size === 0 || spec.devices === undefined) return spec;
  const devices = spec.devices.map((device) =>
    device.taints === undefined
      ? device
      : {
          ...device,
          taints: device.taints.map((taint): DeviceTaint => {
            const timeAdded = times.get(taintId(device.name, taint));
            return timeAdded === undefined ? taint : { ...taint, timeAdded };
          }),
        },
  );
  return { ...spec, devices };
}

function taintId(device: string, taint: DeviceTaint): string {
  return JSON.stringify([device, taint.key, taint.value ?? "", taint.effect]);
}

/** Same spec and still owned by this Node; fields the server adds elsewhere are ignored. */
function matches(desired: ResourceSlice, observed: ResourceSlice | undefined, pool: PoolIdentity): boolean {
  if (observed === undefined) return false;
  const owned = (observed.metadata.ownerReferences ?? []).some((o) => isDeepStrictEqual(o, ownerReference(pool)));
  return owned && isDeepStrictEqual(normalizeSpec(observed.spec), normalizeSpec(desired.spec));
}

/** The API omits empty lists and maps and false; treat absent and empty alike. */
function normalizeSpec(spec: ResourceSlice["spec"]): unknown {
  return {
    driver: spec.driver,
    nodeName: spec.nodeName,
    pool: spec.pool,
    devices: (spec.devices ?? []).map((d) => ({
      ...d,
      attributes: d.attributes ?? {},
      allowMultipleAllocations: d.allowMultipleAllocations === true,
      capacity: Object.fromEntries(Object.entries(d.capacity ?? {}).map(([name, capacity]) => [name, normalizeCapacity(capacity)])),
      // The server stamps the time (keepTaintTimes carries it on); an old one drops the field.
      taints: (d.taints ?? []).map(({ timeAdded: _, ...taint }) => ({ value: "", ...taint })),
    })),
    rest: Object.keys(spec).filter((k) => !["driver", "nodeName", "pool", "devices"].includes(k)),
  };
}

/** The server writes quantities in its canonical form ("10000M" as "10G"): compare their values. */
function normalizeCapacity(capacity: DeviceCapacity): unknown {
  const policy = capacity.requestPolicy;
  const range = policy?.validRange;
  const key = (text: string | undefined): string | undefined => (text === undefined ? undefined : quantityKey(text));
  return {
    value: quantityKey(capacity.value),
    requestPolicy:
      policy === undefined
        ? undefined
        : {
            default: key(policy.default),
            validValues: (policy.validValues ?? []).map(quantityKey),
            validRange: range === undefined ? undefined : { min: key(range.min), max: key(range.max), step: key(range.step) },
          },
  };
}
