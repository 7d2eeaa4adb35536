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
 *
 * "All our entries" must survive a restart, when memory starts empty: a
 * claim that an earlier agent wrote may hold entries of ours for devices
 * nobody reports now (attached long ago, and fine), and an apply naming only
 * the device that changed would remove them. So the first write of such a
 * claim is preceded by one read of it, and its apply carries our entries as
 * the API has them, with the changes on top. Only claims prepared before the
 * start need it (earlierClaims): one prepared since had every device
 * reported at prepare, before any other write, so memory holds them all.
 * Their entries are not rebuilt from the prepared plans instead, since a
 * plan knows the devices but not their state (interface, addresses, a
 * DeviceLost), and writing a guess would overwrite what the claim says.
 */
import type { Logger } from "pino";
import { claimStatusApplyBody, deviceStatus, READY_CONDITION, type AllocatedDeviceStatus, type DeviceSlot, type DeviceState } from "../claims/status.ts";
import { errorMessage } from "../common/errors.ts";
import {
  applyResourceClaimStatus, createEvent, getResourceClaim, isNotFound,
  type ClaimDeviceStatus, type EventTarget, type KubeClient,
} from "../kube/index.ts";

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
  /**
   * The claims whose status may hold entries of ours from before this
   * reporter started (the agent's prepared claims): each is read before its
   * first write. Without it, or when it fails, every claim is: as correct,
   * at one more request per claim.
   */
  earlierClaims?: () => Promise<Iterable<ClaimIdentity>>;
}

interface PendingClaim {
  claim: ClaimIdentity;
  devices: Map<string, AllocatedDeviceStatus>;
  dirty: boolean;
  /** Whether memory holds every entry of ours (read from the API, cleared, or nothing written before). */
  complete: boolean;
}

export class ClaimStatusReporter {
  readonly #options: StatusReporterOptions;
  readonly #claims = new Map<string, PendingClaim>();
  readonly #events: { target: EventTarget; type: "Normal" | "Warning"; reason: string; message: string }[] = [];
  /** UIDs of claims to read before their first write (see earlierClaims), listed at start; "all" when they are not known. */
  #earlier: Promise<Set<string> | "all"> | undefined;
  #wake: (() => void) | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(options: StatusReporterOptions) {
    this.#options = options;
  }

  start(): void {
    this.#earlier ??= this.#earlierClaims();
    this.#running ??= this.#loop();
  }

  /** Records the state of one of our devices in a claim; written soon after. */
  setDevice(claim: ClaimIdentity, { device, shareID }: DeviceSlot, state: DeviceState): void {
    const pending = this.#pending(claim);
    const previous = pending.devices.get(device);
    const ref = { driver: this.#options.driverName, pool: this.#options.poolName, device, ...(shareID !== undefined && { shareID }) };
    pending.devices.set(device, deviceStatus(ref, state, { now: new Date(), previous }));
    pending.dirty = true;
    this.#wake?.();
  }

  /** Removes all our entries from the claim (at unprepare). */
  clearClaim(claim: ClaimIdentity): void {
    const pending = this.#pending(claim);
    pending.devices.clear();
    // An empty apply removes every entry of ours, whoever wrote it: nothing to read first.
    pending.complete = true;
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
      pending = { claim, devices: new Map(), dirty: false, complete: false };
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

  async #earlierClaims(): Promise<Set<string> | "all"> {
    const { earlierClaims, logger } = this.#options;
    if (earlierClaims === undefined) return "all";
    try {
      return new Set([...(await earlierClaims())].map((c) => c.uid));
    } catch (err) {
      logger.warn({ err: errorMessage(err) }, "cannot list the claims prepared before this start; reading every claim before its first status write");
      return "all";
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
      try {
        if (!pending.complete && !(await this.#readEarlier(pending))) {
          this.#claims.delete(pending.claim.uid);
          continue;
        }
        const body = claimStatusApplyBody(pending.claim, [...pending.devices.values()]);
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

  /**
   * Completes memory with the entries of ours the claim holds (see the top
   * of this file) when it may hold some this reporter did not write; a
   * device reported since keeps its news. False when the claim is gone: a
   * claim of the same name and another UID is not ours to write.
   */
  async #readEarlier(pending: PendingClaim): Promise<boolean> {
    const { client, driverName, poolName } = this.#options;
    const { namespace, name, uid } = pending.claim;
    const earlier = await (this.#earlier ??= this.#earlierClaims());
    if (earlier !== "all" && !earlier.has(uid)) {
      pending.complete = true;
      return true;
    }
    const claim = await getResourceClaim(client, namespace, name);
    if (claim.metadata.uid !== uid) return false;
    if (earlier !== "all") earlier.delete(uid);
    // Cleared while the read was in flight: the empty apply needs nothing from it.
    if (pending.complete) return true;
    pending.complete = true;
    for (const entry of claim.status?.devices ?? []) {
      if (entry.driver !== driverName || entry.pool !== poolName) continue;
      const known = ownFields(entry);
      const now = pending.devices.get(entry.device);
      pending.devices.set(entry.device, now === undefined ? known : keepTransitionTime(now, known));
    }
    return true;
  }
}

/**
 * The fields of an entry that deviceStatus writes, as the API has them:
 * applying anything more would take fields another manager set in our entry.
 */
function ownFields(entry: ClaimDeviceStatus): AllocatedDeviceStatus {
  const { driver, pool, device, networkData } = entry;
  return {
    driver,
    pool,
    device,
    conditions: (entry.conditions ?? [])
      .filter((c) => c.type === READY_CONDITION)
      .map(({ observedGeneration, ...c }) => ({ ...c, ...(observedGeneration !== undefined && { observedGeneration }) })),
    ...(networkData?.interfaceName !== undefined && {
      networkData: {
        interfaceName: networkData.interfaceName,
        ips: networkData.ips ?? [],
        ...(networkData.hardwareAddress !== undefined && { hardwareAddress: networkData.hardwareAddress }),
      },
    }),
  };
}

/**
 * `entry`, made before the claim was read, with the Ready transition time
 * the claim has when its status did not change (deviceStatus's rule, applied
 * late: at setDevice the earlier entry was not known).
 */
function keepTransitionTime(entry: AllocatedDeviceStatus, earlier: AllocatedDeviceStatus): AllocatedDeviceStatus {
  const before = earlier.conditions.find((c) => c.type === READY_CONDITION);
  return {
    ...entry,
    conditions: entry.conditions.map((c) => (c.type === READY_CONDITION && before?.status === c.status ? { ...c, lastTransitionTime: before.lastTransitionTime } : c)),
  };
}
