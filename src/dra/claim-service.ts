/**
 * Prepare and unprepare of claims, independent of the gRPC version that
 * asked: per-claim results (one claim's failure never fails the others),
 * claims of one call processed concurrently, one claim never worked on twice
 * at once (ClaimLocks), results on disk before they are returned
 * (ClaimState), and a budget per call: a claim still busy when it runs out
 * gets a per-claim error while its work finishes in the background under
 * its lock, so the kubelet's retry finds a consistent state.
 */
import type { Logger } from "pino";
import { errorMessage } from "../common/errors.ts";
import { driverClaim, type ClaimPreparer, type ClaimRef, type ClaimSource, type DriverClaim, type PreparedDevice } from "./claim.ts";
import type { ClaimLocks } from "./claim-locks.ts";
import { preparedOf, type ClaimState } from "./claim-state.ts";
import { ClaimError } from "./errors.ts";
import type { ClaimOperation, ClaimOperationStatus, DraMetrics } from "./metrics.ts";

export type ClaimOutcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ClaimError };

export interface ClaimServiceOptions {
  driver: string;
  source: ClaimSource;
  preparer: ClaimPreparer;
  state: ClaimState;
  locks: ClaimLocks;
  logger: Logger;
  metrics?: DraMetrics | undefined;
}

/** Which step a claim is in, for the error when its budget runs out. */
/**
 * Which phase a claim operation is in (for the error when its budget runs
 * out), and how long each phase took (for the log line when it ends).
 */
class Progress {
  phase = "starting";
  readonly #spentMs: Record<string, number> = {};
  #since = performance.now();

  enter(phase: string): void {
    const now = performance.now();
    this.#spentMs[this.phase] = (this.#spentMs[this.phase] ?? 0) + (now - this.#since);
    this.phase = phase;
    this.#since = now;
  }

  /** Milliseconds per phase so far, rounded to 0.1 ms. */
  spentMs(): Record<string, number> {
    this.enter(this.phase);
    return Object.fromEntries(Object.entries(this.#spentMs).map(([phase, ms]) => [phase, Math.round(ms * 10) / 10]));
  }
}

export class ClaimService {
  readonly #options: ClaimServiceOptions;
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #closing = new AbortController();

  constructor(options: ClaimServiceOptions) {
    this.#options = options;
  }

  /** Prepares each claim (deduplicated by UID); resolves with one outcome per UID. */
  async prepareClaims(claims: readonly ClaimRef[], budget: AbortSignal): Promise<Map<string, ClaimOutcome<readonly PreparedDevice[]>>> {
    return this.#each(claims, (claim) => this.prepareClaim(claim, budget));
  }

  async unprepareClaims(claims: readonly ClaimRef[], budget: AbortSignal): Promise<Map<string, ClaimOutcome<undefined>>> {
    return this.#each(claims, async (claim) => {
      await this.unprepareClaim(claim, budget);
      return undefined;
    });
  }

  /** Prepares one claim, or answers what an earlier prepare stored. */
  async prepareClaim(claim: ClaimRef, budget: AbortSignal): Promise<readonly PreparedDevice[]> {
    return this.#hook("prepare", claim, budget, (log, signal, progress) => this.#prepare(claim, log, signal, progress));
  }

  /** Releases one claim; a claim never prepared (or already released) succeeds. */
  async unprepareClaim(claim: ClaimRef, budget: AbortSignal): Promise<void> {
    await this.#hook("unprepare", claim, budget, (_log, signal, progress) => this.#unprepare(claim, signal, progress));
  }

  /**
   * Aborts work in flight and waits until it has stopped, or for `graceMs`:
   * work that ignores its signal is then left to the process's exit, which
   * the state on disk survives like any crash.
   */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.#closing.abort(new Error("the DRA plugin is stopping"));
    const settled = Promise.allSettled([...this.#inflight]).then(() => true);
    const timer = Number.isFinite(graceMs) ? new Promise<false>((resolve) => setTimeout(resolve, graceMs, false).unref()) : undefined;
    const done = await (timer === undefined ? settled : Promise.race([settled, timer]));
    if (!done) this.#options.logger.warn({ claims: this.#inflight.size }, `claim work still running ${graceMs} ms after stop; leaving it`);
  }

  async #each<T>(claims: readonly ClaimRef[], fn: (claim: ClaimRef) => Promise<T>): Promise<Map<string, ClaimOutcome<T>>> {
    const unique = new Map(claims.map((c) => [c.uid, c]));
    const entries = await Promise.all(
      [...unique.values()].map(async (claim): Promise<[string, ClaimOutcome<T>]> => {
        try {
          return [claim.uid, { ok: true, value: await fn(claim) }];
        } catch (err) {
          return [claim.uid, { ok: false, error: asClaimError(claim, err) }];
        }
      }),
    );
    return new Map(entries);
  }

  /**
   * The thin public wrapper: a logger with the claim's identity, a timer,
   * metrics, and the budget race around the private implementation.
   */
  async #hook<T>(
    operation: ClaimOperation,
    claim: ClaimRef,
    budget: AbortSignal,
    impl: (log: Logger, signal: AbortSignal, progress: Progress) => Promise<{ value: T; noop: boolean }>,
  ): Promise<T> {
    const log = this.#options.logger.child({ claim: `${claim.namespace}/${claim.name}`, claimUID: claim.uid, operation });
    const started = performance.now();
    const signal = AbortSignal.any([budget, this.#closing.signal]);
    const progress = new Progress();
    let status: ClaimOperationStatus = "failed";
    try {
      const { value, noop } = await this.#withinBudget(claim, log, signal, progress, impl(log, signal, progress));
      status = noop ? "noop" : "success";
      log.info({ noop, ms: Math.round(performance.now() - started), phaseMs: progress.spentMs() }, `${operation} done`);
      return value;
    } catch (err) {
      const error = asClaimError(claim, err);
      log.warn({ err: error, code: error.code, phase: progress.phase }, `${operation} failed`);
      throw error;
    } finally {
      this.#options.metrics?.observe(operation, status, (performance.now() - started) / 1000);
    }
  }

  /**
   * Resolves with the work, or rejects with CLAIM_DEADLINE when the budget
   * runs out first. The work itself stays tracked until it settles, so
   * close() can wait for it and its lock is released only when it is done.
   */
  async #withinBudget<T>(claim: ClaimRef, log: Logger, signal: AbortSignal, progress: Progress, work: Promise<T>): Promise<T> {
    const tracked = work.finally(() => this.#inflight.delete(tracked));
    this.#inflight.add(tracked);
    // Once the budget won the race nobody awaits the work; say how it ended.
    let late = false;
    tracked.then(
      () => {
        if (late) log.info("finished after its budget ran out; the result is saved for the kubelet's retry");
      },
      (err: unknown) => {
        if (late) log.warn({ err }, "failed after its budget ran out");
      },
    );
    if (signal.aborted) {
      late = true;
      throw deadlineError(claim, signal, progress);
    }
    let onAbort: (() => void) | undefined;
    const expired = new Promise<never>((_, reject) => {
      onAbort = () => {
        late = true;
        reject(deadlineError(claim, signal, progress));
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([tracked, expired]);
    } finally {
      if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
    }
  }

  async #prepare(claim: ClaimRef, log: Logger, signal: AbortSignal, progress: Progress): Promise<{ value: readonly PreparedDevice[]; noop: boolean }> {
    progress.enter("waiting for the claim's lock");
    return this.#options.locks.run(claim.uid, { signal }, () => this.#prepareLocked(claim, log, signal, progress));
  }

  async #prepareLocked(claim: ClaimRef, log: Logger, signal: AbortSignal, progress: Progress): Promise<{ value: readonly PreparedDevice[]; noop: boolean }> {
    const { state, preparer } = this.#options;
    progress.enter("reading its state");
    const record = await state.get(claim);
    if (record?.state === "prepared") {
      if (preparer.restore !== undefined) {
        progress.enter("restoring what a reboot wiped");
        const prepared = { devices: record.devices, plan: record.plan };
        await this.#callPreparer("CLAIM_PREPARE", claim, "cannot restore the files of a prepared claim", () => preparer.restore?.(claim, prepared, { signal }) ?? Promise.resolve());
      }
      return { value: record.devices, noop: true };
    }

    // The intent is on disk already when an interrupted prepare is rolled
    // back; otherwise it is written while the claim is read, so that its
    // fsync costs the pod's start nothing, and forgotten if the read fails.
    // Every write of the claim's record waits for it: a late rename would
    // bring back what a later write replaced.
    const interrupted = record?.state === "preparing";
    const intent = interrupted ? Promise.resolve() : state.markPreparing(claim);
    intent.catch(() => undefined);

    progress.enter("reading the claim");
    let driverView;
    try {
      driverView = await this.#read(claim, signal);
    } catch (err) {
      if (!interrupted) await this.#forgetIntent(claim, intent, log);
      throw err;
    }

    if (interrupted) {
      progress.enter("rolling back an interrupted prepare");
      log.info("an earlier prepare did not finish: rolling it back first");
      await this.#callPreparer("CLAIM_PREPARE", claim, "cannot roll back an interrupted prepare", () => preparer.unprepare(claim, undefined, { signal }));
    }

    progress.enter("preparing");
    let prepared;
    try {
      prepared = await preparer.prepare(driverView, { signal, recordIntent: () => intent });
      await intent;
    } catch (err) {
      progress.enter("rolling back a failed prepare");
      await intent.catch(() => undefined);
      await this.#rollBack(claim, log, signal);
      throw new ClaimError("CLAIM_PREPARE", claim, `cannot prepare: ${errorMessage(err)}`, { cause: err });
    }

    progress.enter("saving the result");
    await state.markPrepared(claim, prepared);
    return { value: prepared.devices, noop: false };
  }

  async #unprepare(claim: ClaimRef, signal: AbortSignal, progress: Progress): Promise<{ value: undefined; noop: boolean }> {
    progress.enter("waiting for the claim's lock");
    return this.#options.locks.run(claim.uid, { signal }, () => this.#unprepareLocked(claim, signal, progress));
  }

  async #unprepareLocked(claim: ClaimRef, signal: AbortSignal, progress: Progress): Promise<{ value: undefined; noop: boolean }> {
    const { state, preparer } = this.#options;
    progress.enter("reading its state");
    const record = await state.get(claim);
    if (record === undefined) return { value: undefined, noop: true };

    progress.enter("unpreparing");
    await this.#callPreparer("CLAIM_UNPREPARE", claim, "cannot unprepare", () => preparer.unprepare(claim, preparedOf(record), { signal }));
    progress.enter("forgetting its state");
    await state.forget(claim);
    return { value: undefined, noop: false };
  }

  /** The claim's content for this driver, checked like the kubelet plugin helper does. */
  async #read(claim: ClaimRef, signal: AbortSignal): Promise<DriverClaim> {
    let content;
    try {
      content = await this.#options.source.get(claim, { signal });
    } catch (err) {
      throw new ClaimError("CLAIM_SOURCE", claim, `cannot read the claim: ${errorMessage(err)}`, { cause: err });
    }
    if (content.ref.uid !== claim.uid) {
      throw new ClaimError("CLAIM_REPLACED", claim, `the claim was replaced: it has uid ${content.ref.uid} now`);
    }
    const view = driverClaim(content, this.#options.driver);
    if (view === undefined) throw new ClaimError("CLAIM_UNALLOCATED", claim, "the claim is not allocated yet");
    if (view.results.length === 0) {
      throw new ClaimError("CLAIM_UNALLOCATED", claim, `the claim's allocation has no device of driver ${this.#options.driver}`);
    }
    return { ref: claim, ...view };
  }

  /** Removes the intent written for a prepare that never reached the preparer; one left behind only makes the next prepare roll back nothing. */
  async #forgetIntent(claim: ClaimRef, intent: Promise<void>, log: Logger): Promise<void> {
    try {
      await intent;
      await this.#options.state.forget(claim);
    } catch (err) {
      log.warn({ err }, "cannot remove the intent of a prepare that did not start; the next prepare or unprepare of the claim removes it");
    }
  }

  /**
   * Undoes a prepare that failed: the preparer releases what it may hold and
   * the intent record goes. If the release fails too, the record stays so a
   * later prepare or unprepare retries it.
   */
  async #rollBack(claim: ClaimRef, log: Logger, signal: AbortSignal): Promise<void> {
    try {
      await this.#options.preparer.unprepare(claim, undefined, { signal });
      await this.#options.state.forget(claim);
    } catch (err) {
      log.error({ err }, "cannot roll back a failed prepare; a later prepare or unprepare retries it");
    }
  }

  async #callPreparer(code: "CLAIM_PREPARE" | "CLAIM_UNPREPARE", claim: ClaimRef, what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      throw new ClaimError(code, claim, `${what}: ${errorMessage(err)}`, { cause: err });
    }
  }
}

function deadlineError(claim: ClaimRef, signal: AbortSignal, progress: Progress): ClaimError {
  return new ClaimError("CLAIM_DEADLINE", claim, `gave up while ${progress.phase}: ${errorMessage(signal.reason)}`, { cause: signal.reason });
}

function asClaimError(claim: ClaimRef, err: unknown): ClaimError {
  if (err instanceof ClaimError) return err;
  // Anything not already a ClaimError came from the lock or the store.
  return new ClaimError("CLAIM_STATE", claim, errorMessage(err), { cause: err });
}
