/**
 * Device health for the kubelet (DRAResourceHealth) and for the device's
 * taints in its ResourceSlice (device-taints.ts), from what the agent
 * already watches:
 * - a device on the host is healthy unless its link reports no lower layer
 *   (cable or PF down) or is not present;
 * - a device in a pod is unhealthy when it has no carrier there while it is
 *   up (pod-links.ts polls it), or once it vanished from its pod (the poll
 *   or recovery finds it gone); unknown while its pod's namespace is gone
 *   and the runtime has not said where the pod runs (unplaced), or while
 *   recovering it fails (the agent cannot tell what state it is in).
 * A device the workload set down is no fault: the workload may do that on
 * purpose, and a link set down has no carrier whatever the cable does.
 */
import type { DeviceHealthReport, DeviceHealthSource } from "../dra/index.ts";
import type { Attacher, RecoveryResult } from "../engine/index.ts";
import type { DeviceReport, Inventory, InventorySnapshot } from "../inventory/index.ts";
import { deviceOfAttachmentKey, type PodLinkState, type PodLinkWatch } from "./pod-links.ts";

const UNHEALTHY_OPERSTATES = new Set(["lowerlayerdown", "notpresent"]);

/** What is wrong with an unhealthy device: the cause its ResourceSlice taint names. */
export type DeviceFault = "LinkDown" | "DeviceGone";

/** A device's health, and for an unhealthy one the fault behind it. */
export interface DeviceCondition extends DeviceHealthReport {
  readonly fault?: DeviceFault | undefined;
}

/** What AttachmentRecovery asks of the engine, and RecoveryFindings watches. */
export type RecoveryEngine = Pick<Attacher, "recover" | "retarget" | "attachments">;

/**
 * What recovery last found wrong with each journaled attachment (lost,
 * unplaced, failed), read off the results of the engine's recover() and
 * retarget() on their way to AttachmentRecovery.
 *
 * A recover() pass visits every attachment except one it left alone because
 * it was settled and in its pod, or because another call was working on it;
 * a lost, unplaced or failed one is never settled. So a finding that a pass
 * did not visit is dropped: its attachment was attached again since, was
 * detached, or is being attached or detached (the next pass says). Only
 * findings from before the pass began are dropped so: one a concurrent
 * retarget() made is newer than what the pass saw.
 */
export class RecoveryFindings {
  readonly #findings = new Map<string, { result: RecoveryResult; seq: number }>();
  /** Counts recordings, to tell findings older than a pass from newer ones. */
  #seq = 0;
  readonly #listeners = new Set<() => void>();

  /** `engine`, recording what its recover() and retarget() find. */
  observe(engine: RecoveryEngine): RecoveryEngine {
    return {
      recover: async () => {
        const before = this.#seq;
        const results = await engine.recover();
        this.#record(results, before);
        return results;
      },
      retarget: async (targets) => {
        const results = await engine.retarget(targets);
        this.#record(results);
        return results;
      },
      attachments: () => engine.attachments(),
    };
  }

  /** The findings by DRA device name (the part of the journal key after the claim UID). */
  byDevice(): Map<string, RecoveryResult> {
    return new Map([...this.#findings].map(([key, { result }]) => [deviceOfAttachmentKey(key), result]));
  }

  /** Calls `listener` after any change; dispose the result to stop. */
  onChange(listener: () => void): Disposable {
    this.#listeners.add(listener);
    return {
      [Symbol.dispose]: () => {
        this.#listeners.delete(listener);
      },
    };
  }

  /** Takes in results; for a recover() pass, `passBegan` is the count when it began. */
  #record(results: ReadonlyMap<string, RecoveryResult>, passBegan?: number): void {
    const seq = ++this.#seq;
    let changed = false;
    for (const [key, result] of results) {
      const previous = this.#findings.get(key)?.result;
      if (lasting(result)) {
        changed ||= previous?.outcome !== result.outcome || previous.error !== result.error;
        this.#findings.set(key, { result, seq });
      } else {
        changed = this.#findings.delete(key) || changed;
      }
    }
    if (passBegan !== undefined) {
      for (const [key, finding] of this.#findings) {
        if (finding.seq <= passBegan && !results.has(key)) {
          this.#findings.delete(key);
          changed = true;
        }
      }
    }
    if (changed) for (const listener of [...this.#listeners]) listener();
  }
}

export class InventoryHealth implements DeviceHealthSource {
  readonly #inventory: Pick<Inventory, "current" | "subscribe">;
  readonly #pool: string;
  readonly #findings: RecoveryFindings;
  readonly #podLinks: Pick<PodLinkWatch, "byDevice" | "onChange"> | undefined;

  constructor(inventory: Pick<Inventory, "current" | "subscribe">, pool: string, findings: RecoveryFindings, podLinks?: Pick<PodLinkWatch, "byDevice" | "onChange">) {
    this.#inventory = inventory;
    this.#pool = pool;
    this.#findings = findings;
    this.#podLinks = podLinks;
  }

  devices(): readonly DeviceCondition[] {
    return healthOf(this.#inventory.current(), this.#pool, this.#findings.byDevice(), this.#podLinks?.byDevice());
  }

  onChange(listener: () => void): Disposable {
    const unsubscribe = this.#inventory.subscribe(() => {
      listener();
    });
    const findings = this.#findings.onChange(listener);
    const podLinks = this.#podLinks?.onChange(listener);
    return {
      [Symbol.dispose]: () => {
        unsubscribe();
        findings[Symbol.dispose]();
        podLinks?.[Symbol.dispose]();
      },
    };
  }
}

/**
 * The health of every published device; `findings`: recovery's, and `podLinks`: the devices
 * in pods as their pods see them, both by DRA device name.
 */
export function healthOf(
  snapshot: InventorySnapshot,
  pool: string,
  findings: ReadonlyMap<string, RecoveryResult>,
  podLinks: ReadonlyMap<string, PodLinkState> = new Map(),
): DeviceCondition[] {
  return snapshot.reports.filter((r) => r.publish).map((r) => ({ pool, device: r.name, ...deviceHealth(r, findings.get(r.name), podLinks.get(r.name)) }));
}

/**
 * A finding outranks the host's view: it is about the attachment, which is
 * what the pod the device is allocated to sees, even once the device shows
 * up on the host again. A known fault outranks an unknown.
 */
function deviceHealth(report: DeviceReport, finding: RecoveryResult | undefined, podLink: PodLinkState | undefined): Pick<DeviceCondition, "health" | "message" | "fault"> {
  if (finding?.outcome === "lost") {
    return { health: "unhealthy", fault: "DeviceGone", message: `${finding.error ?? "the device vanished"}; the pod runs without this interface` };
  }
  if (report.attached && podLink === "missing") {
    return { health: "unhealthy", fault: "DeviceGone", message: `${report.device.ifName} vanished from the pod it was attached to; the pod runs without this interface` };
  }
  if (report.attached && podLink !== undefined && podLink !== "missing" && podLink.up && !podLink.carrier) {
    return { health: "unhealthy", fault: "LinkDown", message: `${report.device.ifName} has no carrier in its pod (cable or link partner down, or for a VF its PF)` };
  }
  const state = report.device.operState;
  // A device in a pod is carried over from before it moved: its host operstate is stale.
  if (!report.attached && state !== undefined && UNHEALTHY_OPERSTATES.has(state)) {
    return { health: "unhealthy", fault: "LinkDown", message: `${report.device.ifName} reports operstate ${state} (no carrier or lower device down)` };
  }
  if (finding?.outcome === "unplaced") return { health: "unknown", message: finding.error };
  if (finding?.outcome === "failed") {
    return { health: "unknown", message: `recovering its attachment failed: ${finding.error ?? "unknown error"}; netclaim tries again` };
  }
  return { health: "healthy" };
}

function lasting(result: RecoveryResult): boolean {
  return result.outcome === "lost" || result.outcome === "unplaced" || result.outcome === "failed";
}
