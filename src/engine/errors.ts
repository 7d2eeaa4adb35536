/**
 * Engine errors name the attachment, the device and the step that failed,
 * so a pod event or claim condition says exactly what went wrong where.
 */
import { NetclaimError } from "../common/errors.ts";

export type EngineErrorCode =
  /** The plan is invalid (bad name, address, route). */
  | "ENGINE_PLAN"
  /** The device to attach or restore is not where its identity says. */
  | "ENGINE_DEVICE_MISSING"
  /** The pod-side name is taken in the pod (or by another device of the plan). */
  | "ENGINE_NAME_COLLISION"
  /** A kernel operation failed during a step. */
  | "ENGINE_STEP_FAILED"
  /** Read-back after configuring did not match the plan. */
  | "ENGINE_VERIFY"
  /** Writing a CDI spec or reading RDMA char devices failed. */
  | "ENGINE_CDI";

export class EngineError extends NetclaimError<EngineErrorCode> {
  readonly attachment: string;
  readonly device: string;
  readonly step: string;

  constructor(code: EngineErrorCode, where: { attachment: string; device: string; step: string }, message: string, options?: ErrorOptions) {
    super(code, `attachment ${where.attachment}, device ${where.device}, step ${where.step}: ${message}`, options);
    this.attachment = where.attachment;
    this.device = where.device;
    this.step = where.step;
  }
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
