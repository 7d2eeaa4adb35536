/**
 * dra/: the DRA kubelet plugin. Registers with the kubelet through
 * `plugins_registry/`, serves DRAPlugin v1 and v1beta1 (one implementation)
 * and the DRAResourceHealth stream on the DRA socket, and turns prepare and
 * unprepare calls into per-claim work with crash-safe state shared by every
 * agent instance on the node. Knows nothing of networks: what a claim means
 * comes from a ClaimSource and a ClaimPreparer.
 *
 *   const plugin = await DraPlugin.start({ driver, kubeletRootDir, store, claimSource, preparer, health, logger });
 *   ...
 *   await plugin.close();   // deregisters first, then drains calls
 */
export { DraPlugin, type DraPluginOptions } from "./plugin.ts";
export {
  baseRequestName,
  driverClaim,
  type AllocationConfig,
  type AllocationResult,
  type ClaimConsumer,
  type ClaimContent,
  type ClaimPreparer,
  type ClaimRef,
  type ClaimSource,
  type DriverClaim,
  type JsonValue,
  type PreparedClaim,
  type PreparedDevice,
} from "./claim.ts";
export { AllocationPreparer } from "./allocation-preparer.ts";
export { ClaimState, type ClaimRecord } from "./claim-state.ts";
export {
  DEFAULT_HEALTH_RESEND_MS,
  MutableDeviceHealthSource,
  type DeviceHealthReport,
  type DeviceHealthSource,
  type DeviceHealthState,
} from "./health.ts";
export { DraMetrics } from "./metrics.ts";
export { DRA_VERSIONS, HEALTH_SERVICE_NAMES, supportedVersions, type DraVersion, type RegistrationStatus } from "./registration.ts";
export { socketPaths, type SocketPaths } from "./sockets.ts";
export { ClaimError, DraError, DraSocketError, RpcStatusError, type DraErrorCode } from "./errors.ts";
