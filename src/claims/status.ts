/**
 * What netclaim writes into `ResourceClaim.status.devices[]` for its own
 * devices (KEP-4817): `networkData` and a `Ready` condition, so
 * `kubectl describe resourceclaim` shows the interface and why it is or is not
 * ready. Entries are applied with server-side apply under our field manager,
 * so we own our entries and nobody else's.
 */
import { formatCidr, parseCidr } from "../common/ip.ts";

export const READY_CONDITION = "Ready";

/** Condition reasons; stable API for users' alerts and scripts. */
export const StatusReason = {
  /** Prepared; waiting for the pod sandbox. */
  Prepared: "Prepared",
  /** Moved into the pod and configured when the sandbox started. */
  InterfaceAttached: "InterfaceAttached",
  /** Attached after the sandbox started (agent or NRI connection was down at the time). */
  InterfaceAttachedLate: "InterfaceAttachedLate",
  /** Left to Multus: a NetworkAttachmentDefinition configures the device. */
  DelegatedToMultus: "DelegatedToMultus",
  InvalidConfig: "InvalidConfig",
  AttachFailed: "AttachFailed",
  /**
   * The device vanished while its pod ran (hot-unplug, a VF removed, a
   * driver reload): it is in neither the pod nor the host. Nothing is left to
   * restore; netclaim forgets the attachment once the pod is gone.
   */
  DeviceLost: "DeviceLost",
} as const;
export type StatusReason = (typeof StatusReason)[keyof typeof StatusReason];

export type DeviceState =
  | { kind: "prepared" }
  | { kind: "attached"; interfaceName: string; addresses: readonly string[]; hardwareAddress?: string; late: boolean }
  /** `interfaceName` etc.: the interface Multus made of the device, when it was found in the pod. */
  | { kind: "delegated"; resourceName: string; interfaceName?: string; addresses?: readonly string[]; hardwareAddress?: string }
  | { kind: "failed"; reason: typeof StatusReason.InvalidConfig | typeof StatusReason.AttachFailed | typeof StatusReason.DeviceLost; message: string };

export interface DeviceRef {
  driver: string;
  pool: string;
  device: string;
  /** The allocation's share of a device allocated many times (a shared parent): part of the entry's key. */
  shareID?: string;
}

/** One of our devices in a claim: its DRA name, and its share when the device is allocated many times. */
export interface DeviceSlot {
  device: string;
  shareID?: string | undefined;
}

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface NetworkDeviceData {
  interfaceName: string;
  ips: string[];
  hardwareAddress?: string;
}

export interface AllocatedDeviceStatus extends DeviceRef {
  conditions: Condition[];
  networkData?: NetworkDeviceData;
}

/** The API caps condition messages at 32 KiB; ours are short, but a kernel error may not be. */
const MAX_MESSAGE = 4096;

export function deviceStatus(
  ref: DeviceRef,
  state: DeviceState,
  options: { now: Date; previous?: AllocatedDeviceStatus | undefined; observedGeneration?: number },
): AllocatedDeviceStatus {
  const { status, reason, message } = readiness(state);
  const previous = options.previous?.conditions.find((c) => c.type === READY_CONDITION);
  const condition: Condition = {
    type: READY_CONDITION,
    status,
    reason,
    message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message,
    // Kubernetes convention: the time changes only when the status does.
    lastTransitionTime: previous?.status === status ? previous.lastTransitionTime : rfc3339(options.now),
    ...(options.observedGeneration !== undefined ? { observedGeneration: options.observedGeneration } : {}),
  };
  const entry: AllocatedDeviceStatus = { ...ref, conditions: [condition] };
  const data = networkData(state);
  if (data !== undefined) entry.networkData = data;
  return entry;
}

/** The pod's interface, when known: the one netclaim attached, or the one Multus made of a delegated device. */
function networkData(state: DeviceState): NetworkDeviceData | undefined {
  if ((state.kind !== "attached" && state.kind !== "delegated") || state.interfaceName === undefined) return undefined;
  return {
    interfaceName: state.interfaceName,
    ips: canonicalIps(state.addresses ?? []),
    ...(state.hardwareAddress !== undefined ? { hardwareAddress: state.hardwareAddress } : {}),
  };
}

function readiness(state: DeviceState): { status: Condition["status"]; reason: StatusReason; message: string } {
  switch (state.kind) {
    case "prepared":
      return { status: "False", reason: StatusReason.Prepared, message: "prepared; the interface is attached when the pod sandbox starts" };
    case "attached":
      return state.late
        ? {
            status: "True",
            reason: StatusReason.InterfaceAttachedLate,
            message: `${state.interfaceName} attached after the pod sandbox had started (netclaim was not connected to the runtime then); containers that started earlier may not have seen it`,
          }
        : { status: "True", reason: StatusReason.InterfaceAttached, message: `${state.interfaceName} attached and configured` };
    case "delegated": {
      const network = `the NetworkAttachmentDefinition annotated k8s.v1.cni.cncf.io/resourceName=${state.resourceName}`;
      return {
        status: "True",
        reason: StatusReason.DelegatedToMultus,
        message: state.interfaceName === undefined ? `left to Multus: ${network} configures it` : `${state.interfaceName} configured by Multus, from ${network}`,
      };
    }
    case "failed":
      return { status: "False", reason: state.reason, message: state.message };
  }
}

/** Canonical, unique CIDRs, as API validation requires (at most 16). */
function canonicalIps(addresses: readonly string[]): string[] {
  const out = new Set<string>();
  for (const address of addresses) {
    const prefix = parseCidr(address);
    if (prefix !== undefined) out.add(formatCidr(prefix));
  }
  return [...out].slice(0, 16);
}

function rfc3339(date: Date): string {
  // metav1.Time has second precision.
  return `${date.toISOString().slice(0, 19)}Z`;
}

/**
 * The server-side-apply body for `resourceclaims/status`. Applying it with our
 * field manager makes `devices` exactly our entries; applying an empty list
 * removes every entry we own and leaves other drivers' alone.
 */
export function claimStatusApplyBody(
  claim: { namespace: string; name: string; uid: string },
  devices: readonly AllocatedDeviceStatus[],
): { apiVersion: string; kind: string; metadata: { namespace: string; name: string; uid: string }; status: { devices: AllocatedDeviceStatus[] } } {
  return {
    apiVersion: "resource.k8s.io/v1",
    kind: "ResourceClaim",
    // The uid makes the apply fail instead of touching a recreated claim of the same name.
    metadata: { namespace: claim.namespace, name: claim.name, uid: claim.uid },
    status: { devices: [...devices] },
  };
}
