/**
 * The DRAResourceHealth stream (v1 from kubelet 1.37, v1alpha1 from 1.34; the
 * same messages on the wire, see plugin.ts): every message is
 * the complete list of the driver's devices. The kubelet stamps each device
 * with the receive time and marks it Unknown when it is not re-reported
 * within its timeout (30 s unless the device says otherwise), so the list is
 * re-sent periodically, and at once when a device changes.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { setTimeout as sleep } from "node:timers/promises";
import { HealthStatus, type NodeWatchResourcesResponseSchema } from "../gen/kubelet/drahealth/v1/health_pb.js";
import type { ServerStreamWriter } from "./grpc-service.ts";

export type DeviceHealthState = "healthy" | "unhealthy" | "unknown";

export interface DeviceHealthReport {
  readonly pool: string;
  readonly device: string;
  readonly health: DeviceHealthState;
  /** Why, for people (kubelet 1.36+ shows it; at most 1024 characters). */
  readonly message?: string | undefined;
  /** How long the kubelet may trust this report (kubelet 1.35+); 0 or absent: its default. */
  readonly timeoutSeconds?: number | undefined;
}

/** Where device health comes from (the inventory, in the agent). */
export interface DeviceHealthSource {
  /** The complete current list. */
  devices(): readonly DeviceHealthReport[];
  /** Calls `listener` after any change; dispose the result to stop. */
  onChange(listener: () => void): Disposable;
}

/** The kubelet's default health timeout; reports must come more often. */
export const KUBELET_HEALTH_TIMEOUT_MS = 30_000;
export const DEFAULT_HEALTH_RESEND_MS = 10_000;

const HEALTH_STATUS = {
  healthy: HealthStatus.HEALTHY,
  unhealthy: HealthStatus.UNHEALTHY,
  unknown: HealthStatus.UNKNOWN,
} as const satisfies Record<DeviceHealthState, HealthStatus>;

const MAX_MESSAGE = 1024;

type WatchResponse = MessageInitShape<typeof NodeWatchResourcesResponseSchema>;

/**
 * Serves one NodeWatchResources stream until `signal` aborts: sends the full
 * list now, after every change that changes a device's health (changes in a
 * burst coalesce into one message; most changes of the source, such as a
 * device moving into a pod, change no device's health and send nothing), and
 * every `resendMs`.
 */
export async function serveHealthStream(
  source: DeviceHealthSource,
  stream: ServerStreamWriter<typeof NodeWatchResourcesResponseSchema>,
  options: { signal: AbortSignal; resendMs: number },
): Promise<void> {
  const { signal, resendMs } = options;
  let changed = new AbortController();
  const subscription = source.onChange(() => {
    changed.abort();
  });
  let sent: string | undefined;
  let resend = true;
  try {
    while (!signal.aborted) {
      const wake = changed;
      const devices = source.devices();
      const current = JSON.stringify(devices);
      if (resend || current !== sent) {
        await stream.send(healthMessage(devices));
        sent = current;
      }
      try {
        await sleep(resendMs, undefined, { signal: AbortSignal.any([signal, wake.signal]) });
        resend = true;
      } catch {
        // Woken by a change (loop, and send what changed) or by the end of the stream (loop exits).
        resend = false;
      }
      if (wake.signal.aborted) changed = new AbortController();
    }
  } finally {
    subscription[Symbol.dispose]();
  }
}

export function healthMessage(devices: readonly DeviceHealthReport[]): WatchResponse {
  const now = BigInt(Math.floor(Date.now() / 1000));
  return {
    devices: devices.map((d) => ({
      device: { poolName: d.pool, deviceName: d.device },
      health: HEALTH_STATUS[d.health],
      lastUpdatedTime: now,
      healthCheckTimeoutSeconds: BigInt(d.timeoutSeconds ?? 0),
      message: d.message === undefined || d.message.length <= MAX_MESSAGE ? (d.message ?? "") : `${d.message.slice(0, MAX_MESSAGE - 3)}...`,
    })),
  };
}

/** A health source whose list is set by its owner; it notifies on every change. */
export class MutableDeviceHealthSource implements DeviceHealthSource {
  #devices: readonly DeviceHealthReport[];
  readonly #listeners = new Set<() => void>();

  constructor(devices: readonly DeviceHealthReport[] = []) {
    this.#devices = devices;
  }

  devices(): readonly DeviceHealthReport[] {
    return this.#devices;
  }

  set(devices: readonly DeviceHealthReport[]): void {
    this.#devices = devices;
    for (const listener of [...this.#listeners]) listener();
  }

  onChange(listener: () => void): Disposable {
    this.#listeners.add(listener);
    return {
      [Symbol.dispose]: () => {
        this.#listeners.delete(listener);
      },
    };
  }
}
