/**
 * Recovery of the engine's journaled attachments while the agent runs: at
 * start (what a killed agent left), after every NRI reconnection (pods may
 * have started or gone meanwhile) and on a timer (a device that vanished, a
 * restore that failed half-way), so nothing waits for a restart to converge.
 *
 * After a Synchronize, attachments whose recorded namespace is gone while
 * their pod runs are pointed at the pod's live namespace (retarget), where
 * the device is recognized by its identity.
 *
 * What needs a person is reported where they look, once per change rather
 * than on every run: a device that vanished from its live pod is DeviceLost
 * on its claim and a Warning event on its pod; an attachment recovery could
 * not finish is logged, AttachFailed on its claim, and tried again on the
 * next run. Nothing here ever stops the agent.
 */
import type { Logger } from "pino";
import { StatusReason, type DeviceSlot } from "../claims/status.ts";
import { errorMessage } from "../common/errors.ts";
import type { Attacher, AttachResult, RecoveryResult } from "../engine/index.ts";
import type { ClaimIdentity, ClaimStatusReporter } from "./status-reporter.ts";

/** How often recovery runs when nothing else asks for it. */
export const RECOVERY_INTERVAL_MS = 60_000;

/** The claim, pod and DRA device one journaled attachment belongs to. */
export interface AttachmentOwner extends DeviceSlot {
  claim: ClaimIdentity;
  pod: { namespace: string; name: string; uid: string };
}

export interface AttachmentRecoveryOptions {
  engine: Pick<Attacher, "recover" | "retarget" | "attachments">;
  /** The owners of the attachments the prepared claims plan, by journal key. */
  owners: () => Promise<ReadonlyMap<string, AttachmentOwner>>;
  status: Pick<ClaimStatusReporter, "setDevice" | "event">;
  logger: Logger;
  /** Called after every run: which devices sit in pods may have changed. */
  onRecovered: () => Promise<void>;
  /** Called with the attachments a run put (back) in their pods: what the containers read of them is rewritten. */
  onReattached: (attached: readonly AttachResult[]) => Promise<void>;
  intervalMs?: number;
}

export class AttachmentRecovery {
  readonly #options: AttachmentRecoveryOptions;
  #running: Promise<void> | undefined;
  /** A run asked for while one was running: it starts when that one ends. */
  #next: Promise<void> | undefined;
  /** The last lasting outcome (lost, unplaced, failed) reported per attachment. */
  readonly #reported = new Map<string, RecoveryResult>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: AttachmentRecoveryOptions) {
    this.#options = options;
  }

  /**
   * Recovers now; while a run is going on, once more after it (what asked
   * may have changed after that run looked). Never rejects: a failure is
   * logged, and the next run tries again.
   */
  run(): Promise<void> {
    if (this.#running === undefined) {
      this.#running = this.#recover().finally(() => {
        this.#running = undefined;
      });
      return this.#running;
    }
    this.#next ??= this.#running.then(() => {
      this.#next = undefined;
      return this.run();
    });
    return this.#next;
  }

  /** Runs recovery on a timer (every RECOVERY_INTERVAL_MS unless told otherwise) until close(). */
  start(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setInterval(() => {
      this.request();
    }, this.#options.intervalMs ?? RECOVERY_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Asks for a run without waiting for it (an NRI reconnection); close() waits for it. */
  request(): void {
    if (this.#closed) return;
    // run() never rejects; the promise is kept in #running or #next for close().
    void this.run();
  }

  /** Stops the timer and waits for the run in progress, if any. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#next;
    await this.#running;
  }

  /**
   * Points attachments whose recorded namespace is gone at the namespace
   * their pod runs in now (`targets`: journal key to namespace path, from
   * the runtime), and reports what the engine found there. Never rejects.
   */
  async retarget(targets: ReadonlyMap<string, string>): Promise<void> {
    if (targets.size === 0) return;
    try {
      await this.#reportChanges(await this.#options.engine.retarget(targets));
    } catch (err) {
      this.#options.logger.error({ err: errorMessage(err) }, "pointing attachments at their pods' new namespaces failed; the next re-synchronization tries again");
    }
  }

  async #recover(): Promise<void> {
    const { engine, logger, onRecovered } = this.#options;
    try {
      await this.#reportChanges(await engine.recover());
      // Attachments detached since (their pods stopped) need no memory of what was reported.
      const journaled = new Set(await engine.attachments());
      for (const key of this.#reported.keys()) if (!journaled.has(key)) this.#reported.delete(key);
      await onRecovered();
    } catch (err) {
      logger.error({ err: errorMessage(err) }, "recovering journaled attachments failed; the next run tries again");
    }
  }

  async #reportChanges(results: ReadonlyMap<string, RecoveryResult>): Promise<void> {
    const changed = [...results].filter(([key, result]) => this.#changed(key, result));
    if (changed.length > 0) {
      const owners = await this.#options.owners();
      for (const [key, result] of changed) this.#report(key, result, owners.get(key));
      this.#options.logger.info({ recovered: Object.fromEntries(changed.map(([key, result]) => [key, result.outcome])) }, "recovered journaled attachments");
    }
    await this.#options.onReattached([...results.values()].flatMap((result) => (result.outcome === "attached" && result.attached !== undefined ? [result.attached] : [])));
  }

  /**
   * Whether an outcome is news: a lasting one (lost, unplaced, failed) the
   * first time or with a new error, "attached" only after one of those, and
   * every other one (the record is gone after it).
   */
  #changed(key: string, result: RecoveryResult): boolean {
    const previous = this.#reported.get(key);
    if (lasting(result)) return previous?.outcome !== result.outcome || previous.error !== result.error;
    return result.outcome !== "attached" || previous !== undefined;
  }

  #report(key: string, result: RecoveryResult, owner: AttachmentOwner | undefined): void {
    const { status, logger } = this.#options;
    const where = { attachment: key, ...(owner !== undefined && { claim: `${owner.claim.namespace}/${owner.claim.name}`, pod: `${owner.pod.namespace}/${owner.pod.name}` }) };
    if (result.outcome === "unplaced") {
      // Most often its pod was deleted while the agent was away; the runtime's next word settles it.
      this.#reported.set(key, result);
      logger.info({ ...where, err: result.error }, "a journaled device is neither in its recorded pod namespace nor on the host; waiting for the runtime to say where its pod runs");
      return;
    }
    if (result.outcome === "lost" || result.outcome === "failed") {
      this.#reported.set(key, result);
      const lost = result.outcome === "lost";
      const message = lost
        ? `${result.error ?? "the device vanished"}; the pod runs without this interface, and netclaim forgets the attachment when the pod is deleted`
        : `recovering the attachment failed: ${result.error ?? "unknown error"}; netclaim tries again`;
      logger.error({ ...where, outcome: result.outcome, err: result.error }, lost ? "a device vanished from its running pod" : "recovering an attachment failed");
      if (owner === undefined) return;
      status.setDevice(owner.claim, owner, { kind: "failed", reason: lost ? StatusReason.DeviceLost : StatusReason.AttachFailed, message });
      status.event({ apiVersion: "v1", kind: "Pod", ...owner.pod }, "Warning", lost ? "NetworkDeviceLost" : "NetworkDeviceAttachFailed", `device ${owner.device}: ${message}`);
      return;
    }
    const previous = this.#reported.get(key)?.outcome;
    this.#reported.delete(key);
    // Attached again after the claim said lost or failed: it says attached again.
    const attached = result.attached;
    if (result.outcome === "attached" && attached !== undefined && owner !== undefined && (previous === "lost" || previous === "failed")) {
      status.setDevice(owner.claim, owner, {
        kind: "attached",
        interfaceName: attached.podName,
        addresses: attached.addresses,
        ...(attached.mac !== undefined && { hardwareAddress: attached.mac }),
        late: false,
      });
    }
  }
}

function lasting(result: RecoveryResult): boolean {
  return result.outcome === "lost" || result.outcome === "unplaced" || result.outcome === "failed";
}
