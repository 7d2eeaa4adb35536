/**
 * The agent's command-line flags: one table drives parsing, the config layer
 * they produce, and the help text, so the three cannot drift apart.
 */
import type { ConfigLayer } from "../agent/config.ts";
import { setPath } from "../agent/config.ts";

export interface FlagSpec {
  name: string;
  /** Where the value lands in AgentConfig; absent for flags that are not config. */
  path?: readonly string[];
  type: "string" | "boolean" | "list";
  value?: string;
  help: string;
}

export const AGENT_FLAGS: readonly FlagSpec[] = [
  { name: "config", type: "string", value: "FILE", help: "read an AgentConfig YAML file (netclaim.dev/v1alpha1)" },
  { name: "node-name", path: ["nodeName"], type: "string", value: "NAME", help: "the Kubernetes node this agent serves (env NODE_NAME)" },
  { name: "driver-name", path: ["driverName"], type: "string", value: "NAME", help: "DRA driver name used in ResourceSlices and DeviceClasses (default netclaim.dev)" },
  { name: "state-dir", path: ["stateDir"], type: "string", value: "DIR", help: "directory for state that outlives a reboot (default /var/lib/netclaim)" },
  { name: "runtime-dir", path: ["runtimeDir"], type: "string", value: "DIR", help: "tmpfs directory for state of this boot: the attach journal (default /run/netclaim)" },
  { name: "kubeconfig", path: ["kubeconfig"], type: "string", value: "FILE", help: "kubeconfig to reach the API server with a client certificate or token, no exec plugins (default: in-cluster service account; env KUBECONFIG)" },
  { name: "kubelet-dir", path: ["kubelet", "rootDir"], type: "string", value: "DIR", help: "kubelet root directory holding plugins_registry/ and plugins/ (default /var/lib/kubelet)" },
  { name: "dra-versions", path: ["kubelet", "draVersions"], type: "list", value: "LIST", help: "kubelet DRA API versions to serve, preferred first (default v1,v1beta1)" },
  { name: "pod-uid", path: ["kubelet", "podUID"], type: "string", value: "UID", help: "this agent pod's UID; enables rolling-update socket names (env POD_UID)" },
  { name: "nri-socket", path: ["nri", "socketPath"], type: "string", value: "PATH", help: "the runtime's NRI socket (default /var/run/nri/nri.sock)" },
  { name: "nri-plugin-index", path: ["nri", "pluginIndex"], type: "string", value: "NN", help: "two-digit NRI plugin index; lower runs earlier (default 10)" },
  { name: "cni-bin-dirs", path: ["cni", "binDirs"], type: "list", value: "LIST", help: "directories searched for CNI IPAM plugins (default /opt/cni/bin)" },
  { name: "cdi-dir", path: ["cdi", "specDir"], type: "string", value: "DIR", help: "directory for CDI specs of RDMA devices (default /var/run/cdi)" },
  { name: "http-address", path: ["http", "address"], type: "string", value: "IP", help: "address of /readyz, /livez and /metrics (default: every address)" },
  { name: "http-port", path: ["http", "port"], type: "string", value: "PORT", help: "port of /metrics, /readyz and /livez; 0 turns the port off (the probes' socket stays; default 9402)" },
  { name: "log-level", path: ["log", "level"], type: "string", value: "LEVEL", help: "trace, debug, info, warn, error or fatal (default info)" },
  { name: "dry-run", type: "boolean", help: "validate the configuration, print it as JSON and exit" },
  { name: "help", type: "boolean", help: "show this help" },
];

export function flagsToParseArgsOptions(
  flags: readonly FlagSpec[],
): Record<string, { type: "string" | "boolean"; short?: string }> {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const flag of flags) {
    options[flag.name] = { type: flag.type === "boolean" ? "boolean" : "string" };
  }
  const help = options["help"];
  if (help !== undefined) help.short = "h";
  return options;
}

/** Turns parsed flag values into a config layer (only flags that map to config). */
export function flagsToConfigLayer(
  flags: readonly FlagSpec[],
  values: Record<string, string | boolean | undefined>,
): ConfigLayer {
  const layer: ConfigLayer = {};
  for (const flag of flags) {
    const value = values[flag.name];
    if (flag.path === undefined || value === undefined) continue;
    const parsed =
      flag.type === "list" && typeof value === "string"
        ? value.split(",").map((s) => s.trim()).filter((s) => s !== "")
        : value;
    setPath(layer, flag.path, parsed);
  }
  return layer;
}

export function formatFlags(flags: readonly FlagSpec[]): string {
  return formatColumns(flags.map((f) => [`--${f.name}${f.value === undefined ? "" : ` ${f.value}`}`, f.help]));
}

/** Help rows: the names in a column as wide as the longest, then what each does. */
export function formatColumns(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, help]) => `  ${left.padEnd(width)}${help}`).join("\n");
}
