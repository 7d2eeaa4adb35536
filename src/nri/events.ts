/**
 * NRI events and subscription masks (pkg/api/event.go). Bit = 1 << (event − 1).
 * A runtime rejects a mask with bits outside what its NRI version knows, so
 * the mask we answer Configure with is limited to the runtime's version.
 */
export const NriEvent = {
  RUN_POD_SANDBOX: 1,
  STOP_POD_SANDBOX: 2,
  REMOVE_POD_SANDBOX: 3,
  CREATE_CONTAINER: 4,
  POST_CREATE_CONTAINER: 5,
  START_CONTAINER: 6,
  POST_START_CONTAINER: 7,
  UPDATE_CONTAINER: 8,
  POST_UPDATE_CONTAINER: 9,
  STOP_CONTAINER: 10,
  REMOVE_CONTAINER: 11,
  UPDATE_POD_SANDBOX: 12,
  POST_UPDATE_POD_SANDBOX: 13,
  VALIDATE_CONTAINER_ADJUSTMENT: 14,
} as const;
export type NriEvent = (typeof NriEvent)[keyof typeof NriEvent];

export function eventBit(event: NriEvent): number {
  return 1 << (event - 1);
}

/** Events 1–11: every runtime from NRI v0.6 to v0.9 (containerd ≤ 2.1, CRI-O ≤ 1.33). */
const VALID_EVENTS_V06 = 0x7ff;
/** Events 1–14: NRI v0.10 and later. */
const VALID_EVENTS_V010 = 0x3fff;

export interface RuntimeIdentity {
  readonly runtimeName: string;
  readonly runtimeVersion: string;
  /** ConfigureRequest.NRI_version, sent by runtimes from NRI v0.12; empty before. */
  readonly nriVersion: string;
}

/**
 * The events this runtime accepts in a subscription. From the runtime's own
 * NRI version when it says (v0.12+), otherwise inferred from the runtime's
 * release (containerd 2.2 and CRI-O 1.34 moved to NRI v0.10); anything else
 * gets the events every NRI runtime knows.
 */
export function validEventsFor(runtime: RuntimeIdentity): number {
  return embedsNriV010(runtime) ? VALID_EVENTS_V010 : VALID_EVENTS_V06;
}

/**
 * Whether the runtime has NRI's default validator, which can refuse a
 * container while a plugin its pod requires is not registered (NRI v0.10+;
 * the runtime's own configuration still has to enable it).
 */
export function hasDefaultValidator(runtime: RuntimeIdentity): boolean {
  return embedsNriV010(runtime);
}

function embedsNriV010(runtime: RuntimeIdentity): boolean {
  const nri = parseVersion(runtime.nriVersion);
  if (nri !== undefined) return atLeast(nri, [0, 10]);
  const release = parseVersion(runtime.runtimeVersion);
  if (release === undefined) return false;
  if (runtime.runtimeName === "containerd") return atLeast(release, [2, 2]);
  if (runtime.runtimeName === "cri-o") return atLeast(release, [1, 34]);
  return false;
}

function parseVersion(text: string): [number, number] | undefined {
  const match = /^v?(\d+)\.(\d+)/.exec(text);
  if (match === null) return undefined;
  return [Number(match[1]), Number(match[2])];
}

function atLeast(version: [number, number], floor: [number, number]): boolean {
  return version[0] > floor[0] || (version[0] === floor[0] && version[1] >= floor[1]);
}
