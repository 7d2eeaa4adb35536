/**
 * doctor/: whether this node can run netclaim at all, as one list of
 * PASS/WARN/FAIL facts with what to do about each (`netclaim doctor`).
 * Each group of checks is a file; each check is a small function over the
 * dependencies it is given, so the command wires in the real ones (sockets,
 * the API client, netlink, the inventory scan) and the tests fakes.
 *
 *   const report = await runChecks(doctorChecks(config, dependencies));
 *   process.stdout.write(formatText(report));
 *   process.exitCode = exitCode(report);
 */
import type { AgentConfig } from "../agent/config.ts";
import type { InventorySnapshot } from "../inventory/index.ts";
import type { BatchRunner } from "../netlink/index.ts";
import { apiChecks, type DoctorApi } from "./api.ts";
import type { Check } from "./check.ts";
import { deviceChecks } from "./devices.ts";
import { cdiChecks } from "./files.ts";
import { kernelChecks } from "./kernel.ts";
import { kubeletChecks } from "./kubelet.ts";
import { nriChecks, registerAndIdentify, type RuntimeIdentify } from "./nri.ts";
import { stateChecks } from "./state.ts";

export type { Check, CheckResult, CheckStatus } from "./check.ts";
export { exitCode, formatJson, formatText, runChecks, type DoctorReport } from "./runner.ts";
export { AGENT_PERMISSIONS, describePermission, type AgentPermission } from "./permissions.ts";
export type { DoctorApi } from "./api.ts";

export interface DoctorDependencies {
  /** The API client with the agent's credentials; throws when there are none. */
  readonly connectApi: () => Promise<DoctorApi>;
  readonly netlink: Pick<BatchRunner, "batchAcross">;
  /** The inventory scan with the agent's policy, as `netclaim devices` does it. */
  readonly scanDevices: () => Promise<InventorySnapshot>;
  /** Flags that point `netclaim devices` at the same configuration, for fixes: " --config FILE". */
  readonly configHint: string;
  /** Default: register with the runtime as the plugin netclaim-doctor. */
  readonly identifyRuntime?: RuntimeIdentify;
}

/** Every check, in the order a person would fix things: runtime, kubelet, API, kernel, devices, state. */
export function doctorChecks(config: AgentConfig, deps: DoctorDependencies): Check[] {
  return [
    ...nriChecks(config.nri.socketPath, deps.identifyRuntime ?? registerAndIdentify),
    ...kubeletChecks({ kubeletRootDir: config.kubelet.rootDir, driver: config.driverName, podUID: config.kubelet.podUID }),
    ...cdiChecks(config.cdi.specDir),
    ...apiChecks({ connect: deps.connectApi, driverName: config.driverName, networkStatus: config.networkStatus.enabled }),
    ...kernelChecks({ netlink: deps.netlink }),
    ...deviceChecks(deps.scanDevices, deps.configHint),
    ...stateChecks({ stateDir: config.stateDir, runtimeDir: config.runtimeDir, driverName: config.driverName }),
  ];
}
