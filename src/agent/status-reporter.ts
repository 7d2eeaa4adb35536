/**
 * Writes netclaim's entries in ResourceClaim status and the Events users see
 * in `kubectl describe`, off the hot path: the NRI handler only records what
 * happened and returns; a background loop applies it with retries.
 *
 * Per claim only the newest state is kept (a pending write is replaced, not
 * queued behind), and every write carries all of our entries of that claim,
 * since server-side apply removes the entries our field manager stops
 * sending. After a quiet spell the first change waits a moment (coalesceMs)
 * for the ones that follow it: a pod start reports "prepared" and then
 * "attached" within milliseconds, and one write after the start's busiest
 * moment costs the API server, etcd and the node's CPU less than two during it.
 */
import type { Logger } from "pino";
import { claimStatusApplyBody, deviceStatus, type AllocatedDeviceStatus, type DeviceState } from "../claims/status.ts";
import { errorMessage } from "../common/errors.ts";
import { applyResourceClaimStatus, createEvent, isNotFound, type EventTarget, type KubeClient } from "../kube/index.ts";

export interface ClaimIdentity {
  namespace: string;
  name: string;
  uid: string;
}

export interface StatusReporterOptions {
  client: KubeClient;
  driverName: string;
  poolName: string;
  logger: Logger;
  /** Retry delay after a failed write; doubles up to 30 s. */
  retryMs?: number;
  /** How long the first change after a quiet spell waits for more (default 250 ms). */
  coalesceMs?: number;
}

interface PendingClaim {
  claim: ClaimIdentity;
  devices: Map<string, AllocatedDeviceStatus>;
  dirty: boolean;
}

export class ClaimStatusReporter {
  readonly #options: StatusReporterOptions;
  readonly #claims = new Map<string, PendingClaim>();
  readonly #events: { target: EventTarget; type: "Normal" | "Warning"; reason: string; message: string }[] = [];
  #wake: (() => void) | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(options: StatusReporterOptions) {
    this.#options = options;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  /** Records the state of one of our devices in a claim; written soon after. */
  setDevice(claim: ClaimIdentity, device: string, state: DeviceState): void {
    const pending = this.#pending(claim);
    const previous = pending.devices.get(device);
    pending.devices.set(
      device,
      deviceStatus({ driver: this.#options.driverName, pool: this.#options.poolName, device }, state, { now: new Date(), previous }),
    );
    pending.dirty = true;
    this.#wake?.();
  }

  /** Removes all our entries from the claim (at unprepare). */
  clearClaim(claim: ClaimIdentity): void {
    const pending = this.#pending(claim);
    pending.devices.clear();
    pending.dirty = true;
    this.#wake?.();
  }

  event(target: EventTarget, type: "Normal" | "Warning", reason: string, message: string): void {
    this.#events.push({ target, type, reason, message });
    this.#wake?.();
  }

  /** Writes what is pending (best effort within `timeoutMs`), then stops. */
  async close(timeoutMs = 3_000): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    if (this.#running !== undefined) {
      await Promise.race([this.#running, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    }
  }

  #pending(claim: ClaimIdentity): PendingClaim {
    let pending = this.#claims.get(claim.uid);
    if (pending === undefined) {
      pending = { claim, devices: new Map(), dirty: false };
      this.#claims.set(claim.uid, pending);
    }
    return pending;
  }

  async #loop(): Promise<void> {
    const base = this.#options.retryMs ?? 500;
    const coalesceMs = this.#options.coalesceMs ?? 250;
    let delay = base;
    for (;;) {
      const ok = await this.#flush();
      // Closing: one more pass for what came in meanwhile, no retries.
      if (this.#closed && (!ok || this.#nothingPending())) return;
      if (this.#closed) continue;
      delay = ok ? base : Math.min(delay * 2, 30_000);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        if (!ok || !this.#nothingPending()) setTimeout(resolve, ok ? 0 : delay).unref();
      });
      // Gather what follows the first change; closing cuts it short.
      await new Promise<void>((resolve) => {
        this.#wake = () => {
          if (this.#closed) resolve();
        };
        if (this.#closed) resolve();
        else setTimeout(resolve, coalesceMs).unref();
      });
      this.#wake = undefined;
    }
  }

  #nothingPending(): boolean {
    return this.#events.length === 0 && [...this.#claims.values()].every((c) => !c.dirty);
  }

  /** One pass over everything pending; false when something must be retried. */
  async #flush(): Promise<boolean> {
    const { client, driverName, logger } = this.#options;
    let ok = true;
    for (const pending of [...this.#claims.values()]) {
      if (!pending.dirty) continue;
      pending.dirty = false;
      const body = claimStatusApplyBody(pending.claim, [...pending.devices.values()]);
      try {
        await applyResourceClaimStatus(client, body, driverName);
        if (pending.devices.size === 0) this.#claims.delete(pending.claim.uid);
      } catch (err) {
        if (isNotFound(err)) {
          this.#claims.delete(pending.claim.uid);
          continue;
        }
        pending.dirty = true;
        ok = false;
        logger.warn({ claim: `${pending.claim.namespace}/${pending.claim.name}`, err: errorMessage(err) }, "cannot write claim status; will retry");
      }
    }
    while (this.#events.length > 0) {
      const event = this.#events[0];
      if (event === undefined) break;
      try {
        await createEvent(client, { ...event, component: driverName, host: this.#options.poolName });
      } catch (err) {
        logger.warn({ reason: event.reason, err: errorMessage(err) }, "cannot create event; dropping it");
      }
      this.#events.shift();
    }
    return ok;
  }
}
