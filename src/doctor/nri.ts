/**
 * The runtime's NRI socket, where the agent attaches devices: there, a
 * socket, something listening, and a runtime that registers a plugin. The
 * registration is a real one, as a plugin of its own name
 * ("netclaim-doctor") subscribed to one event it ignores, so it never
 * stands in for the agent's plugin; it is how the runtime's name and
 * version are learned (its Configure request), and with them whether its
 * NRI has the default validator.
 */
import { errorMessage } from "../common/errors.ts";
import { createNriPlugin, hasDefaultValidator, type RuntimeIdentity } from "../nri/index.ts";
import { fail, pass, warn, type Check, type CheckResult } from "./check.ts";
import { connectOnce, pathKind } from "./files.ts";

export const NRI_CHECK = "NRI socket";
export const VALIDATOR_CHECK = "NRI validator";
export const DOCTOR_PLUGIN = { name: "netclaim-doctor", index: "99" } as const;

/** Registers with the runtime at `socketPath` and says who it is. */
export type RuntimeIdentify = (socketPath: string, signal: AbortSignal) => Promise<RuntimeIdentity>;

const ENABLE_NRI =
  "turn NRI on in the runtime (containerd 2.x: on by default, [plugins.\"io.containerd.nri.v1.nri\"] disable = false; CRI-O: [crio.nri] enable_nri = true) and mount the socket's directory into the agent's pod; the agent and doctor take the path from nri.socketPath or --nri-socket (docs/install.md)";

export function nriChecks(socketPath: string, identify: RuntimeIdentify = registerAndIdentify): Check[] {
  return [{ name: NRI_CHECK, run: (signal) => checkNri(socketPath, { identify, signal }) }];
}

export async function checkNri(socketPath: string, options: { identify: RuntimeIdentify; signal: AbortSignal }): Promise<CheckResult[]> {
  const { identify, signal } = options;
  let kind;
  try {
    kind = await pathKind(socketPath);
  } catch (err) {
    return [fail(NRI_CHECK, `cannot inspect ${socketPath}: ${errorMessage(err)}`, ENABLE_NRI)];
  }
  if (kind === "missing") return [fail(NRI_CHECK, `no NRI socket at ${socketPath}`, ENABLE_NRI)];
  if (kind !== "socket") return [fail(NRI_CHECK, `${socketPath} is not a socket`, `point nri.socketPath (--nri-socket) at the runtime's NRI socket; ${ENABLE_NRI}`)];
  try {
    await connectOnce(socketPath, signal);
  } catch (err) {
    return [fail(NRI_CHECK, `nothing answers on ${socketPath}: ${errorMessage(err)}`, "the runtime is not running, or was restarted with NRI off and left its socket behind: start it with NRI on (docs/install.md)")];
  }
  let runtime: RuntimeIdentity;
  try {
    runtime = await identify(socketPath, signal);
  } catch (err) {
    return [fail(NRI_CHECK, `the runtime on ${socketPath} accepted a connection but did not register a plugin: ${errorMessage(err)}`, "read the runtime's log for NRI errors (journalctl -u containerd or -u crio)")];
  }
  const who = `${runtime.runtimeName} ${runtime.runtimeVersion}${runtime.nriVersion === "" ? "" : ` (NRI ${runtime.nriVersion})`}`;
  return [pass(NRI_CHECK, `${socketPath}: ${who} registers plugins`), validator(runtime, who)];
}

function validator(runtime: RuntimeIdentity, who: string): CheckResult {
  if (!hasDefaultValidator(runtime)) {
    return warn(
      VALIDATOR_CHECK,
      `${who} has no NRI default validator: while the agent is down, containers of pods with netclaim devices start without their interfaces (the attach gate still stops them at the OCI runtime)`,
      "upgrade to containerd 2.2+ or CRI-O 1.34+ and apply deploy/node-setup and deploy/required-plugin (docs/install.md)",
    );
  }
  return pass(
    VALIDATOR_CHECK,
    `${who} has NRI's default validator; plugins cannot see whether it is on: deploy/node-setup turns it on and deploy/required-plugin makes pods require netclaim (docs/install.md)`,
  );
}

/**
 * A short-lived plugin that only listens for an event it ignores; closed as
 * soon as it is configured. The plugin retries a failed attempt on its own:
 * the first failure, which it logs, is the answer here.
 */
export async function registerAndIdentify(socketPath: string, signal: AbortSignal): Promise<RuntimeIdentity> {
  let failed: (err: Error) => void = () => undefined;
  const firstFailure = new Promise<never>((_resolve, reject) => {
    failed = reject;
  });
  const logger = {
    info() {},
    warn(fields: Record<string, unknown>) {
      if (typeof fields["error"] === "string") failed(new Error(fields["error"]));
    },
  };
  const plugin = createNriPlugin({ removePodSandbox() {} }, { socketPath, pluginName: DOCTOR_PLUGIN.name, pluginIndex: DOCTOR_PLUGIN.index, env: {}, logger });
  try {
    plugin.start();
    await Promise.race([plugin.whenConnected(signal), firstFailure]);
    const runtime = plugin.runtime;
    if (runtime === undefined) throw new Error("the runtime configured the plugin without saying who it is");
    return { runtimeName: runtime.runtimeName, runtimeVersion: runtime.runtimeVersion, nriVersion: runtime.nriVersion };
  } finally {
    await plugin.close();
  }
}
