/**
 * engine/: executes attachment plans — moves devices into pod network
 * namespaces, configures them, restores them to the host; journaled and
 * idempotent. Each device's CDI spec gives its containers RDMA char devices
 * and an attach gate that exists only while the device is in its pod.
 */
export { AttachEngine, type Attacher, type AttachResult, type AttachStep, type BeginOptions, type DetachOptions, type DetachOutcome, type DetachStep, type EngineOptions, type RdmaOps, type Step } from "./engine.ts";
export { EngineError, InjectedCrash, type EngineErrorCode } from "./errors.ts";
export type { RecoveryOutcome, RecoveryResult } from "./recovery.ts";
export { EngineThread, type EngineThreadOptions } from "./thread.ts";
export type { BatchOpTimes } from "./thread-protocol.ts";
export { attachmentPlanSchema, type AttachmentPlan, type AttachmentPlanInput, type DeviceIdentity } from "./plan.ts";
export { cdiDeviceId, GATE_CONTAINER_DIR, rdmaCharDevices, removeCdiSpec, writeCdiSpec, type CdiDeviceEdits, type CharDevice, type RdmaRoots } from "./cdi.ts";
export { attachGateDir, attachGatePath } from "./attach-gate.ts";
