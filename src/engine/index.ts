/**
 * engine/: executes attachment plans — moves devices into pod network
 * namespaces, configures them, restores them to the host; journaled and
 * idempotent. Each attached device has an attach gate, a file that exists
 * only while the device is in its pod; the CDI spec written at prepare
 * (cdi/) mounts it into the device's containers.
 */
export { AttachEngine } from "./engine.ts";
export type { Attacher, AttachResult, AttachStep, BeginOptions, DetachOptions, DetachOutcome, DetachStep, EngineOptions, PodLinkSource, RdmaOps, RecoveryOutcome, RecoveryResult, Step } from "./attacher.ts";
export { EngineError, InjectedCrash, type EngineErrorCode } from "./errors.ts";
export { EngineThread, type EngineThreadOptions } from "./thread.ts";
export type { BatchOpTimes } from "./thread-protocol.ts";
export { attachmentPlanSchema, CHILD_MODES, childSchema, type AttachmentPlan, type AttachmentPlanInput, type ChildInterface, type DeviceIdentity } from "./plan.ts";
export { attachGateDir, attachGatePath } from "./attach-gate.ts";
export { openJournal, type JournalRecord } from "./journal.ts";
