/**
 * The attach engine: moves planned devices into a pod's network namespace,
 * configures them, and restores them to the host exactly as they were.
 *
 * Crash safety: before the first kernel change of an attach or a detach the
 * journal record (plan, original host state, intent) is durably written.
 * Every step looks at the kernel before acting and is safe to repeat, so
 * recover() re-runs the steps toward the recorded intent, after a crash or
 * at any time beside the agent's attaches and detaches (per-attachment
 * locks keep them apart); recovery.ts decides what each record becomes, and
 * no attachment's outcome, a device lost included, ever stops recovery.
 *
 * This file orders the work: locks, journal intents, roll-back, recovery
 * and the attach gates. The work itself is in attach-check.ts (checks and
 * journals before anything moves), attach-steps.ts (into the pod and
 * configured), restore-steps.ts (back to the host), all run through
 * step-runner.ts; the public contract is in attacher.ts.
 */
import { errorMessage } from "../common/errors.ts";
import type { Link } from "../netlink/index.ts";
import type { Collection } from "../store/index.ts";
import { AttachGate } from "./attach-gate.ts";
import { checkAttach, parsePlan, type PreparedAttachment } from "./attach-check.ts";
import { attachOne, placeInPod, verified, type AttachWork } from "./attach-steps.ts";
import type { Attacher, AttachResult, BeginOptions, DetachOptions, DetachOutcome, EngineOptions, PodLinkSource, RecoveryResult } from "./attacher.ts";
import { InjectedCrash, rollbackFailed, stepError } from "./errors.ts";
import { openJournal, type JournalRecord } from "./journal.ts";
import { KeyLocks } from "./key-locks.ts";
import { inAnotherSandbox, recoverRecord, retargeted, type RecoverySteps } from "./recovery.ts";
import { findInPod } from "./host-state.ts";
import { detachOne } from "./restore-steps.ts";
import { StepRunner } from "./step-runner.ts";
import type { AttachmentPlan, AttachmentPlanInput } from "./plan.ts";

/**
 * How often the engine takes up the namespaces of attachments another agent
 * process journaled (adopt): the old agent of a rolling update attaches
 * until it stops, and its holds end with it.
 */
const ADOPT_INTERVAL_MS = 2_000;

export class AttachEngine implements Attacher, PodLinkSource {
  readonly #runner: StepRunner;
  readonly #journal: Collection<JournalRecord>;
  readonly #locks = new KeyLocks();
  readonly #recoverySteps: RecoverySteps;
  /**
   * Attachments this engine attached, or recovered as attached, and has not
   * detached since. Recovery only checks that their device is still in the
   * pod (see recover()); at an agent's start the set is empty.
   */
  readonly #settled = new Set<string>();
  readonly #gate: AttachGate | undefined;
  readonly #adoptTimer: NodeJS.Timeout;

  constructor(options: EngineOptions) {
    this.#runner = new StepRunner(options.netlink, { rdma: options.rdma, beforeStep: options.beforeStep });
    this.#journal = openJournal(options.store);
    this.#gate = options.gateDir === undefined ? undefined : new AttachGate(options.gateDir);
    this.#recoverySteps = {
      journal: this.#journal,
      attach: (record) => attachOne(this.#runner, { record }),
      restore: async (record) => ((await detachOne(this.#runner, record)) === "restored" ? "restored" : "gone"),
      alive: (netns) => this.#runner.pins.alive(netns),
    };
    // A failed pass changes nothing held; the next one tries again.
    this.#adoptTimer = setInterval(() => void this.adopt().catch(() => undefined), ADOPT_INTERVAL_MS).unref();
  }

  /**
   * Makes the namespaces this engine holds follow the journal: holds the
   * namespace of every attachment journaled by any agent process (two run
   * during a rolling update, sharing the journal) and lets go of those whose
   * record another process deleted. Runs on a timer; an attachment another
   * call is working on is left to it.
   */
  async adopt(): Promise<void> {
    const keys = new Set(await this.#journal.keys());
    const pins = this.#runner.pins;
    for (const key of [...pins.keys()].filter((k) => !keys.has(k))) {
      await this.#withRecord(key, (record) => {
        if (record === undefined) pins.unpin(key);
      });
    }
    const held = new Set(pins.keys());
    for (const key of [...keys].filter((k) => !held.has(k))) {
      await this.#withRecord(key, (record) => {
        if (record !== undefined && record.intent !== "detach") pins.pin(key, record.plan.netns);
      });
    }
  }

  /** Runs `work` on `key`'s record, read under its lock; nothing when another call holds the key. */
  async #withRecord(key: string, work: (record: JournalRecord | undefined) => void): Promise<void> {
    const release = this.#locks.tryAcquire(key);
    if (release === undefined) return;
    try {
      work(await this.#journal.get(key));
    } finally {
      release();
    }
  }

  /**
   * Attaches every plan of one pod, in order of pod-side name. Nothing moves
   * unless every device is found and every pod-side name is free. If a step
   * fails, the devices of this call are restored and the error names the
   * device and the step.
   */
  async attach(inputs: readonly AttachmentPlanInput[]): Promise<AttachResult[]> {
    return (await this.begin(inputs)).done;
  }

  /**
   * Attach in two halves: resolves once every plan is checked against the
   * host and the pod and journaled (so every error a caller could act on up
   * front has been thrown), with `done` for the kernel work that follows:
   * the moves and the configuration. A caller can let the pod's start go on
   * meanwhile and wait for `done` where it must.
   */
  async begin(inputs: readonly AttachmentPlanInput[], options: BeginOptions = {}): Promise<{ done: Promise<AttachResult[]> }> {
    const plans = inputs.map((p) => parsePlan(p)).sort((a, b) => (a.podName < b.podName ? -1 : a.podName > b.podName ? 1 : 0));
    if (plans.length === 0) return { done: Promise.resolve([]) };
    const release = await this.#locks.acquire(plans.map((p) => p.key));
    let records: PreparedAttachment[];
    try {
      records = await checkAttach(this.#runner, this.#journal, plans, options.podLinks);
    } catch (err) {
      release();
      throw err;
    }
    options.onChecked?.();
    const done = this.#attachAll(records).finally(release);
    // Handled by whoever awaits `done`; a failure must never count as unhandled before that.
    done.catch(() => undefined);
    return { done };
  }

  async #attachAll(records: readonly PreparedAttachment[]): Promise<AttachResult[]> {
    try {
      // Exclusive RDMA devices need a step outside rtnetlink between
      // configuring and verifying: those pods attach device by device.
      if (records.some(({ record }) => record.plan.rdma?.mode === "exclusive")) {
        const results: AttachResult[] = [];
        for (const attachment of records) results.push(await attachOne(this.#runner, attachment));
        for (const { record } of records) this.#settle(record.plan);
        return results;
      }
      // Everything else, every device's move, configuration and read-back,
      // goes to the worker in one batch: one round trip for the whole pod.
      const works: AttachWork[] = [];
      for (const attachment of records) works.push(await placeInPod(this.#runner, attachment));
      const results = await this.#runner.runSteps(works.flatMap((w) => [...w.steps, w.verify]));
      let offset = 0;
      const attached = works.map((work) => {
        offset += work.steps.reduce((n, s) => n + s.ops.length, 0) + work.verify.ops.length;
        return verified(work, results.slice(offset - work.verify.ops.length, offset));
      });
      for (const { record } of records) this.#settle(record.plan);
      return attached;
    } catch (err) {
      if (err instanceof InjectedCrash) throw err;
      const failures: unknown[] = [];
      for (const { record } of records) {
        const failure = await this.#rollBack(record);
        if (failure instanceof InjectedCrash) throw failure;
        if (failure !== undefined) failures.push(failure);
      }
      throw failures.length === 0 ? err : rollbackFailed(err, failures);
    }
  }

  /**
   * Restores each attachment to the host and forgets it. Unknown keys are
   * "unknown"; with `options.sandbox`, one in another live sandbox of its
   * pod is "kept".
   */
  async detach(keys: readonly string[], options: DetachOptions = {}): Promise<Map<string, DetachOutcome>> {
    const sorted = [...keys].sort();
    const release = await this.#locks.acquire(sorted);
    try {
      const out = new Map<string, DetachOutcome>();
      const records: JournalRecord[] = [];
      for (const key of sorted) {
        const record = await this.#journal.get(key);
        if (record === undefined) out.set(key, "unknown");
        else if (options.sandbox !== undefined && inAnotherSandbox(record, options.sandbox.netns, this.#recoverySteps.alive)) out.set(key, "kept");
        else records.push({ ...record, intent: "detach" });
      }
      // All intents are durable before the first device moves.
      await Promise.all(records.map((r) => this.#journal.put(r.plan.key, r)));
      const done: string[] = [];
      try {
        for (const record of records) {
          // Closed before the device leaves the pod: a container created from here on fails.
          this.#unsettle(record.plan.key);
          out.set(record.plan.key, await detachOne(this.#runner, record));
          done.push(record.plan.key);
        }
      } finally {
        await Promise.all(done.map((key) => this.#journal.delete(key)));
      }
      return out;
    } finally {
      release();
    }
  }

  /**
   * Moves every journaled attachment toward its intent: one whose intent is
   * "attach" and whose pod namespace exists is attached fully; one whose
   * device is in neither that pod nor the host becomes "lost" (and stays so
   * until its pod is gone); one whose recorded namespace is gone is
   * restored when its device is back on the host, and otherwise kept as
   * "unplaced" (see retarget); every other one is restored to the host and
   * forgotten. Safe to run at any time: an attachment another call is
   * working on is left to it (and absent from the result), and a failure is
   * that attachment's outcome, never the end of recovery.
   *
   * An attachment this engine settled itself is only looked for in its pod:
   * found there, it is left exactly as the workload keeps it (absent from
   * the result), since running its steps again would bring up an interface
   * the workload set down or put back an address it removed. At an agent's
   * start nothing is settled, so every attachment gets its steps.
   */
  async recover(): Promise<Map<string, RecoveryResult>> {
    const keys = (await this.#journal.list()).map(([key]) => key);
    return this.#recoverEach(keys, async (record) => {
      const settled = this.#settled.has(record.plan.key) && record.intent === "attach" && (await this.#runner.locateInPod(record)) !== undefined;
      return settled ? undefined : record;
    });
  }

  /**
   * Points attachments at the namespace their pod runs in now (`targets`:
   * journal key to namespace path, as the runtime reports the pod's live
   * sandbox), where the namespace recorded is gone: the runtime replaced the
   * pod's sandbox, or the namespace is reachable under another path. The
   * device is then looked for there by its identity (and attached from the
   * host if it came back there, or recorded as lost). Attachments whose
   * recorded namespace still exists are left alone, and absent from the
   * result.
   */
  async retarget(targets: ReadonlyMap<string, string>): Promise<Map<string, RecoveryResult>> {
    return this.#recoverEach([...targets.keys()], async (record) => {
      const moved = retargeted(record, targets.get(record.plan.key), this.#recoverySteps.alive);
      if (moved !== undefined) await this.#journal.put(moved.plan.key, moved);
      return moved;
    });
  }

  /**
   * Recovers the record of each key that `select` returns (or skips), one
   * key at a time, never one that another call is working on; a failure is
   * that key's outcome.
   */
  async #recoverEach(
    keys: readonly string[],
    select: (record: JournalRecord) => JournalRecord | undefined | Promise<JournalRecord | undefined>,
  ): Promise<Map<string, RecoveryResult>> {
    const out = new Map<string, RecoveryResult>();
    for (const key of keys) {
      const release = this.#locks.tryAcquire(key);
      if (release === undefined) continue;
      try {
        // Read under the lock: a listing may predate an attach or detach that has just finished.
        const record = await this.#journal.get(key);
        const selected = record === undefined ? undefined : await select(record);
        if (selected !== undefined) {
          const result = await recoverRecord(selected, this.#recoverySteps);
          if (result.outcome === "attached") this.#settle(selected.plan);
          else this.#unsettle(key);
          out.set(key, result);
        }
      } catch (err) {
        if (err instanceof InjectedCrash) throw err;
        out.set(key, { outcome: "failed", error: errorMessage(err) });
        try {
          this.#unsettle(key);
        } catch {
          // The outcome already says it failed; the next recovery closes the gate.
        }
      } finally {
        release();
      }
    }
    return out;
  }

  /** Marks an attachment done: recovery leaves it as the workload keeps it, and its gate opens. */
  #settle(plan: AttachmentPlan): void {
    this.#gate?.open(plan.key, plan.podName);
    this.#settled.add(plan.key);
  }

  /** The attachment is not (or no longer) known to be in its pod: its gate closes. */
  #unsettle(key: string): void {
    this.#settled.delete(key);
    this.#gate?.close(key);
  }

  /**
   * Lets go of the pod namespaces this engine holds (namespace-pins.ts), as
   * the agent's process ending would; the journal keeps everything a later
   * engine needs.
   */
  close(): void {
    clearInterval(this.#adoptTimer);
    this.#runner.pins.releaseAll();
  }

  /** Keys of the attachments the journal holds, whatever their intent. */
  async attachments(): Promise<string[]> {
    return (await this.#journal.list()).map(([key]) => key);
  }

  /**
   * Keys of the attachments meant to be in their pods. One whose restore
   * failed half-way (intent "detach") is not among them: attaching it again
   * must go through the checks, and fail there, not count as done. Nor is a
   * lost one: its device is nowhere to attach from. With `keys`, only those
   * are read (a pod's start asks about its own, whatever the node holds).
   */
  async attached(keys?: readonly string[]): Promise<string[]> {
    const records = keys === undefined ? await this.#journal.list() : await Promise.all(keys.map(async (key) => [key, await this.#journal.get(key)] as const));
    return records.filter(([, record]) => record?.intent === "attach").map(([key]) => key);
  }

  /** One link dump per pod namespace, for every settled attachment in it. */
  async podLinks(): Promise<Map<string, Link | null>> {
    const byNetns = new Map<string, JournalRecord[]>();
    for (const [key, record] of await this.#journal.list()) {
      if (!this.#settled.has(key) || record.intent !== "attach") continue;
      byNetns.set(record.plan.netns, [...(byNetns.get(record.plan.netns) ?? []), record]);
    }
    const links = new Map<string, Link | null>();
    for (const [netns, records] of byNetns) {
      let podLinks: Link[];
      try {
        [podLinks] = await this.#runner.netlink.batch(this.#runner.pins.resolve(netns), [{ op: "listLinks" }] as const);
      } catch {
        continue; // The namespace is gone or unreadable: recovery finds out what became of its devices.
      }
      // A detach that began during the dump may have taken the device out already: not a loss.
      for (const record of records.filter((r) => this.#settled.has(r.plan.key))) {
        links.set(record.plan.key, findInPod(podLinks, record) ?? null);
      }
    }
    return links;
  }

  /**
   * Restores a device whose attach failed; what went wrong when that fails
   * too. Its record then stays with intent "detach" for recovery to finish.
   */
  async #rollBack(record: JournalRecord): Promise<unknown> {
    try {
      await this.#journal.put(record.plan.key, { ...record, intent: "detach" });
      await detachOne(this.#runner, { ...record, intent: "detach" });
      await this.#journal.delete(record.plan.key);
      return undefined;
    } catch (err) {
      return stepError(record.plan, "roll-back", err);
    }
  }
}
