/**
 * What recovery decides for one journaled attachment, from the record and
 * what is where in the kernel. The engine runs it (with its locks and its
 * steps) at the agent's start, on NRI reconnects and on a timer, so it must
 * never end recovery: every case is an outcome.
 *
 * A recorded pod namespace that is gone does not say that the pod is gone:
 * the kubelet replaces a pod's sandbox when its pause process dies, and the
 * namespace may be reachable under another path. Such a record is kept
 * ("unplaced") until the runtime says where the pod runs (the engine's
 * retarget) or that it is gone (a detach).
 */
import type { Collection } from "../store/index.ts";
import type { AttachResult, RecoveryResult } from "./attacher.ts";
import { EngineError } from "./errors.ts";
import type { JournalRecord } from "./journal.ts";
import { describeDevice } from "./plan.ts";

/** The engine's steps recovery runs, and its journal. */
export interface RecoverySteps {
  journal: Collection<JournalRecord>;
  /** Attaches from wherever the device is; throws ENGINE_DEVICE_LOST when it is nowhere. */
  attach(record: JournalRecord): Promise<AttachResult>;
  /** Puts the device back on the host when it is in the pod or already back there. */
  restore(record: JournalRecord): Promise<"restored" | "gone">;
  /** Whether a pod namespace is alive (NamespacePins.alive). */
  alive: (netns: string) => boolean;
}

/** Moves one record toward its intent (see RecoveryOutcome); throws only for a step that failed. */
export async function recoverRecord(record: JournalRecord, steps: RecoverySteps): Promise<RecoveryResult> {
  const { key, netns } = record.plan;
  if (record.intent === "detach") {
    const outcome = await steps.restore(record);
    await steps.journal.delete(key);
    return { outcome };
  }
  if (steps.alive(netns)) {
    if (record.intent === "lost") return { outcome: "lost", error: lostError(record).message };
    try {
      return { outcome: "attached", attached: await steps.attach(record) };
    } catch (err) {
      if (!(err instanceof EngineError && err.code === "ENGINE_DEVICE_LOST")) throw err;
      await steps.journal.put(key, { ...record, intent: "lost" });
      return { outcome: "lost", error: err.message };
    }
  }
  // A device back on the host (a NIC the kernel returned, or one that never
  // moved) is restored there; restoring is safe to repeat, so no intent is
  // written before it. One that is not may be in the pod's new namespace.
  if ((await steps.restore(record)) === "restored") {
    await steps.journal.delete(key);
    return { outcome: "restored" };
  }
  if (record.intent !== "lost") await steps.journal.put(key, { ...record, intent: "lost" });
  return {
    outcome: "unplaced",
    error: `device ${record.host.name}: pod namespace ${netns} is gone and the device is not on the host; it stays journaled until the runtime says where its pod runs, or that it is gone`,
  };
}

/**
 * The record pointed at `netns`, the namespace its pod runs in now, when
 * the one it names is gone (undefined when there is nothing to point).
 */
export function retargeted(record: JournalRecord, netns: string | undefined, alive: RecoverySteps["alive"]): JournalRecord | undefined {
  if (netns === undefined || netns === record.plan.netns || record.intent === "detach" || alive(record.plan.netns)) return undefined;
  return { ...record, plan: { ...record.plan, netns }, intent: "attach" };
}

/** The error of a device in neither its pod nor the host, the same wherever it is found so (recovery reports a change only). */
export function lostError({ plan, host }: JournalRecord): EngineError {
  const detail = `device ${host.name} is neither in pod ${plan.netns} nor on the host: it vanished while the pod ran (unplugged, a VF removed, a driver reloaded)`;
  return new EngineError("ENGINE_DEVICE_LOST", { attachment: plan.key, device: describeDevice(plan.device), step: "move" }, detail);
}

/** Whether the record's device went into a live sandbox other than the one in `sandboxNetns` (one the runtime replaced it with). */
export function inAnotherSandbox(record: JournalRecord, sandboxNetns: string | undefined, alive: RecoverySteps["alive"]): boolean {
  return record.plan.netns !== sandboxNetns && alive(record.plan.netns);
}
