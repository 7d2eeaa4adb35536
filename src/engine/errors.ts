/**
 * Engine errors name the attachment, the device and the step that failed,
 * so a pod event or claim condition says exactly what went wrong where.
 */
import { errorMessage, NetclaimError } from "../common/errors.ts";
import { NetlinkError, type NetlinkErrorWire } from "../netlink/index.ts";
import { describeDevice, type AttachmentPlan } from "./plan.ts";

export type EngineErrorCode =
  /** The plan is invalid (bad name, address, route). */
  | "ENGINE_PLAN"
  /** The device to attach or restore is not where its identity says. */
  | "ENGINE_DEVICE_MISSING"
  /**
   * A journaled device is in neither its live pod nor the host: it vanished
   * (hot-unplug, a VF removed, a driver reload) while the pod ran.
   */
  | "ENGINE_DEVICE_LOST"
  /** The pod-side name is taken in the pod (or by another device of the plan). */
  | "ENGINE_NAME_COLLISION"
  /** A kernel operation failed during a step. */
  | "ENGINE_STEP_FAILED"
  /** Read-back after configuring did not match the plan. */
  | "ENGINE_VERIFY"
  /** An attach failed, and restoring its devices to the host failed too (the journal keeps them for recovery). */
  | "ENGINE_ROLLBACK_FAILED"
  /** Writing a CDI spec or reading RDMA char devices failed. */
  | "ENGINE_CDI"
  /** The engine's thread stopped before it answered. */
  | "ENGINE_THREAD";

export interface EngineErrorWhere {
  attachment: string;
  device: string;
  step: string;
}

export class EngineError extends NetclaimError<EngineErrorCode> {
  readonly attachment: string;
  readonly device: string;
  readonly step: string;
  /** The message without the attachment, device and step in front. */
  readonly detail: string;

  constructor(code: EngineErrorCode, where: EngineErrorWhere, detail: string, options?: ErrorOptions) {
    super(code, `attachment ${where.attachment}, device ${where.device}, step ${where.step}: ${detail}`, options);
    this.attachment = where.attachment;
    this.device = where.device;
    this.step = where.step;
    this.detail = detail;
  }

  /** A plain object that survives postMessage between threads, with a netlink cause. */
  toWire(): EngineErrorWire {
    const { attachment, device, step } = this;
    return { code: this.code, where: { attachment, device, step }, detail: this.detail, ...(this.cause instanceof NetlinkError && { cause: this.cause.toWire() }) };
  }

  static fromWire(w: EngineErrorWire): EngineError {
    return new EngineError(w.code, w.where, w.detail, w.cause === undefined ? undefined : { cause: NetlinkError.fromWire(w.cause) });
  }
}

export interface EngineErrorWire {
  code: EngineErrorCode;
  where: EngineErrorWhere;
  detail: string;
  cause?: NetlinkErrorWire;
}

/**
 * The error of an attach whose roll-back failed too: the attach's own error
 * (which device and step failed first), then every device left where the
 * roll-back stopped, so that neither failure goes unreported.
 */
export function rollbackFailed(err: unknown, failures: readonly unknown[]): EngineError {
  const first = err instanceof EngineError ? err : undefined;
  const where = first ?? failures.find((f): f is EngineError => f instanceof EngineError);
  const detail = `${first?.detail ?? errorMessage(err)}; restoring to the host failed too (${failures.map(errorMessage).join("; ")}); the journal keeps the device, and recovery retries the restore`;
  return new EngineError(
    "ENGINE_ROLLBACK_FAILED",
    { attachment: where?.attachment ?? "-", device: where?.device ?? "-", step: where?.step ?? "roll-back" },
    detail,
    { cause: err },
  );
}

/**
 * Thrown by the test hook to stop an operation between two steps as if the
 * process had been killed: the engine does not roll back after it.
 */
export class InjectedCrash extends Error {
  readonly step: string;

  constructor(step: string) {
    super(`injected crash before step ${step}`);
    this.step = step;
    this.name = "InjectedCrash";
  }
}

/** Throws the error `code` against `plan`'s device and `step`. */
export function fail(code: EngineErrorCode, plan: AttachmentPlan, step: string, message: string): never {
  throw new EngineError(code, { attachment: plan.key, device: describeDevice(plan.device), step }, message);
}

/**
 * A failure inside `step` of `plan`'s device as an EngineError naming them
 * (ENGINE_STEP_FAILED, the failure its cause); engine errors and injected
 * crashes pass through unchanged.
 */
export function stepError(plan: AttachmentPlan, step: string, err: unknown): unknown {
  if (err instanceof EngineError || err instanceof InjectedCrash) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new EngineError("ENGINE_STEP_FAILED", { attachment: plan.key, device: describeDevice(plan.device), step }, message, { cause: err });
}
