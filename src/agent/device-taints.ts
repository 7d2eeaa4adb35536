/**
 * The taints netclaim puts on its own devices in the ResourceSlice: an
 * unhealthy device (inventory-health.ts) carries `<driver>/unhealthy` with
 * the fault as its value (LinkDown, DeviceGone), so the scheduler allocates
 * it to no new claim (NoSchedule) or, where the admin chose NoExecute, also
 * evicts the pods that use it. The taint goes when the device is healthy
 * again. A device whose health is unknown is not tainted: not knowing is
 * no reason to keep workloads off it. A claim that must have a device
 * anyway tolerates the key (any fault) or the key and value (one fault);
 * docs/configuration.md#device-taints.
 */
import type { Logger } from "pino";
import { errorMessage } from "../common/errors.ts";
import type { DeviceTaint, ServerVersion } from "../kube/index.ts";
import type { DeviceTaintSource } from "../slices/index.ts";
import type { AgentConfig } from "./config.ts";
import type { DeviceCondition } from "./inventory-health.ts";

/** The first release whose API server keeps device taints without a feature gate turned on (beta, then GA in 1.37). */
export const DEVICE_TAINTS_SINCE_MINOR = 36;

export interface DeviceConditions {
  devices(): readonly DeviceCondition[];
  onChange(listener: () => void): Disposable;
}

export class DeviceTaints implements DeviceTaintSource {
  readonly #conditions: DeviceConditions;
  readonly #key: string;
  readonly #effect: DeviceTaint["effect"];

  constructor(conditions: DeviceConditions, options: { driverName: string; effect: DeviceTaint["effect"] }) {
    this.#conditions = conditions;
    this.#key = `${options.driverName}/unhealthy`;
    this.#effect = options.effect;
  }

  current(): Map<string, DeviceTaint[]> {
    const taints = new Map<string, DeviceTaint[]>();
    for (const condition of this.#conditions.devices()) {
      if (condition.health === "unhealthy" && condition.fault !== undefined) {
        taints.set(condition.device, [{ key: this.#key, value: condition.fault, effect: this.#effect }]);
      }
    }
    return taints;
  }

  subscribe(listener: () => void): () => void {
    const subscription = this.#conditions.onChange(listener);
    return () => {
      subscription[Symbol.dispose]();
    };
  }
}

/**
 * Whether to taint devices: `auto` asks the API server its release, since one before 1.36
 * drops the field unless its DRADeviceTaints gate is on. Says what it decided and why.
 */
export async function deviceTaintsEnabled(config: AgentConfig["deviceTaints"], serverVersion: () => Promise<ServerVersion>, logger: Pick<Logger, "info" | "warn">): Promise<boolean> {
  if (config.mode !== "auto") {
    logger.info({ deviceTaints: config.mode, effect: config.effect }, `device taints are ${config.mode} (deviceTaints.mode)`);
    return config.mode === "on";
  }
  let version;
  try {
    version = await serverVersion();
  } catch (err) {
    logger.warn({ err: errorMessage(err) }, "cannot read the API server's release; device taints are off (set deviceTaints.mode: on to taint unhealthy devices)");
    return false;
  }
  const enabled = version.major > 1 || version.minor >= DEVICE_TAINTS_SINCE_MINOR;
  if (enabled) {
    logger.info({ apiServer: version.gitVersion, effect: config.effect }, "device taints are on: unhealthy devices are tainted in the ResourceSlice");
  } else {
    logger.info(
      { apiServer: version.gitVersion },
      `device taints are off: Kubernetes ${version.gitVersion} keeps them only with the DRADeviceTaints feature gate (set deviceTaints.mode: on where it is on); device health still reaches the kubelet`,
    );
  }
  return enabled;
}
