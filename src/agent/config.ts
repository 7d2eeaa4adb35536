/**
 * AgentConfig: what the agent needs to know about its node, read from a YAML
 * file, then environment variables, then flags (later sources win). Every
 * source is validated by one schema so an error always names the field and
 * where it came from.
 */
import { readFile } from "node:fs/promises";
import { posix } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { isPluginType, UNWORKABLE_IPAM_TYPES } from "../cni/index.ts";
import { NetclaimError } from "../common/errors.ts";
import { devicePolicySchema } from "../inventory/index.ts";

export const AGENT_CONFIG_API_VERSION = "netclaim.dev/v1alpha1";

const dnsSubdomain = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, {
    error: "must be a lowercase DNS subdomain such as netclaim.dev",
  });

const absolutePath = z.string().startsWith("/", { error: "must be an absolute path" });

/** Flags and environment variables are strings: accept a port written as digits there. */
const portNumber = z.preprocess(
  (value) => (typeof value === "string" && /^[0-9]+$/.test(value) ? Number(value) : value),
  z.number({ error: "must be a port number, 0 to 65535" }).int().min(0).max(65535),
);

/** Environment variables are strings: accept a switch written as true or false there. */
const switchValue = z.preprocess(
  (value) => (value === "true" ? true : value === "false" ? false : value),
  z.boolean({ error: "must be true or false" }),
);

const ipamPluginType = z
  .string()
  .refine(isPluginType, { error: "must be a plugin's bare file name, such as host-local" })
  .superRefine((type, ctx) => {
    const why = Object.hasOwn(UNWORKABLE_IPAM_TYPES, type) ? UNWORKABLE_IPAM_TYPES[type] : undefined;
    if (why !== undefined) ctx.addIssue({ code: "custom", message: `cannot be allowed: ${why}` });
  });

/** Compared as a directory: "/var/lib/cni" allows /var/lib/cni/x, never /var/lib/cni-other. */
const pathPrefix = absolutePath
  .refine((path) => !path.split("/").includes(".."), { error: 'must not contain ".."' })
  .transform((path) => `${posix.normalize(path).replace(/\/$/, "")}/`);

const ipamPolicySchema = z
  .strictObject({
    /**
     * IPAM plugin types a NetworkAttachmentDefinition may name. Only pool
     * allocators: bridge, tuning, portmap and the like would act on the node.
     */
    allowedTypes: z.array(ipamPluginType).default(["host-local", "whereabouts", "static"]),
    /**
     * Absolute paths anywhere in an IPAM configuration must lie under one of
     * these: host-local's default dataDir, and the directories of whereabouts'
     * kubeconfig and configuration file upstream and on OpenShift. Not all of
     * /var/lib/cni (OpenShift keeps its plugin binaries in /var/lib/cni/bin)
     * nor of /etc/cni/net.d (whereabouts' log_file appended to a file there
     * would break the runtime's CNI configuration).
     */
    allowedPathPrefixes: z
      .array(pathPrefix)
      .default(["/var/lib/cni/networks/", "/etc/cni/net.d/whereabouts.d/", "/etc/kubernetes/cni/net.d/whereabouts.d/"]),
    /** Whether a claim may name a NetworkAttachmentDefinition of another namespace (as Multus's namespaceIsolation: false). */
    allowCrossNamespace: z.boolean().default(false),
    /** Each IPAM plugin run is killed after this long; prepare has 45 s in all. */
    timeoutSeconds: z.number().int().min(1).max(40).default(20),
  })
  .prefault({});

export const agentConfigSchema = z
  .object({
    apiVersion: z.literal(AGENT_CONFIG_API_VERSION).default(AGENT_CONFIG_API_VERSION),
    kind: z.literal("AgentConfig").default("AgentConfig"),
    /** The DRA driver name; ResourceSlices and DeviceClasses must use the same one. */
    driverName: dnsSubdomain.default("netclaim.dev"),
    /** The Kubernetes node this agent serves; normally from the downward API. */
    nodeName: dnsSubdomain.optional(),
    /** Where the agent keeps state a reboot must not lose (prepared claims, IPAM leases). */
    stateDir: absolutePath.default("/var/lib/netclaim"),
    /**
     * Where the agent keeps state about this boot only (which device sits in
     * which pod, and how it was on the host); a tmpfs, so a reboot clears it.
     */
    runtimeDir: absolutePath.default("/run/netclaim"),
    /** A kubeconfig file; without it the agent uses its pod's service account. */
    kubeconfig: absolutePath.optional(),
    /** Which network devices to publish (see docs/devices.md). */
    devices: devicePolicySchema,
    inventory: z
      .strictObject({
        /** Root of the sysfs/procfs tree to read devices from ("/" on a node). */
        root: absolutePath.default("/"),
        /** Full rescan period in seconds, for changes no link event reports. */
        resyncSeconds: z.number().int().min(5).max(3600).default(60),
      })
      .prefault({}),
    cni: z
      .strictObject({
        /** Where CNI plugins (IPAM) are looked up; OpenShift uses /var/lib/cni/bin. */
        binDirs: z.array(absolutePath).min(1).default(["/opt/cni/bin"]),
        /** What a tenant's NetworkAttachmentDefinition may make an IPAM plugin do (docs/configuration.md). */
        ipam: ipamPolicySchema,
      })
      .prefault({}),
    cdi: z
      .strictObject({
        /** Where CDI specs for RDMA character devices are written. */
        specDir: absolutePath.default("/var/run/cdi"),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"),
      })
      .prefault({}),
    kubelet: z
      .strictObject({
        /** The kubelet root; registration and plugin sockets live under it. */
        rootDir: absolutePath.default("/var/lib/kubelet"),
        /** Which kubelet DRA gRPC versions to serve and advertise, in order of preference. */
        draVersions: z
          .array(z.enum(["v1", "v1beta1"]))
          .min(1)
          .refine((v) => new Set(v).size === v.length, { error: "must not repeat a version" })
          .default(["v1", "v1beta1"]),
        /**
         * The agent pod's UID. When set, sockets get per-pod names so two agents
         * can overlap during a DaemonSet rolling update.
         */
        podUID: z.string().regex(/^[0-9a-f-]{1,64}$/, { error: "must be a pod UID" }).optional(),
      })
      .prefault({}),
    nri: z
      .strictObject({
        socketPath: absolutePath.default("/var/run/nri/nri.sock"),
        pluginName: z
          .string()
          .regex(/^[A-Za-z0-9_.+-]+$/, { error: "may only use letters, digits and _.+-" })
          .default("netclaim"),
        pluginIndex: z
          .string()
          .regex(/^[0-9]{2}$/, { error: "must be exactly two digits" })
          .default("10"),
      })
      .prefault({}),
    http: z
      .strictObject({
        /** Where /readyz, /livez and /metrics listen; absent: every address, IPv6 and IPv4. */
        address: z.union([z.ipv4(), z.ipv6()], { error: "must be an IPv4 or IPv6 address" }).optional(),
        /**
         * 0 turns the port off, as the kubelet's own --healthz-port does; the DaemonSet's
         * probes ask the per-instance socket under runtimeDir (probes.ts), which stays.
         */
        port: portNumber.default(9402),
      })
      .prefault({}),
    networkStatus: z
      .strictObject({
        /**
         * Off: the agent never reads or writes pods. On: it adds its native
         * interfaces to the pod's k8s.v1.cni.cncf.io/network-status annotation
         * beside Multus's entries (network-status.ts), which needs get and
         * patch on pods/status.
         */
        enabled: switchValue.default(false),
      })
      .prefault({}),
    deviceTaints: z
      .strictObject({
        /**
         * Taints an unhealthy device in its ResourceSlice (device-taints.ts) so the
         * scheduler allocates it to no new claim. auto: where the API server keeps device
         * taints (Kubernetes 1.36+, where DRADeviceTaints is on by default); on: always
         * (an older cluster with the feature gate turned on); off: never.
         */
        mode: z.enum(["auto", "on", "off"]).default("auto"),
        /**
         * NoSchedule keeps new claims off the device; NoExecute also evicts the pods that use
         * it (the kubelet then restarts them on a healthy device, if one is free).
         */
        effect: z.enum(["NoSchedule", "NoExecute"]).default("NoSchedule"),
      })
      .prefault({}),
  })
  .strict();

export type AgentConfig = z.infer<typeof agentConfigSchema>;

export type AgentConfigErrorCode = "CONFIG_READ" | "CONFIG_PARSE" | "CONFIG_INVALID";

export class AgentConfigError extends NetclaimError<AgentConfigErrorCode> {}

/** A partial config; each source produces one. */
export type ConfigLayer = Record<string, unknown>;

export interface LoadAgentConfigOptions {
  /** Path of a YAML file; absent means defaults plus the other sources. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Values from command-line flags, already shaped like the config. */
  flags?: ConfigLayer;
}

/**
 * Environment variables the agent honours. NODE_NAME and POD_UID match the
 * downward-API names the manifests use; the rest are NETCLAIM_*.
 */
export const ENVIRONMENT_VARIABLES: readonly { name: string; path: readonly string[]; help: string }[] = [
  { name: "NODE_NAME", path: ["nodeName"], help: "node this agent serves" },
  { name: "POD_UID", path: ["kubelet", "podUID"], help: "agent pod UID (rolling-update socket names)" },
  { name: "NETCLAIM_DRIVER_NAME", path: ["driverName"], help: "DRA driver name" },
  { name: "NETCLAIM_STATE_DIR", path: ["stateDir"], help: "state directory" },
  { name: "NETCLAIM_RUNTIME_DIR", path: ["runtimeDir"], help: "runtime state directory (a tmpfs)" },
  { name: "KUBECONFIG", path: ["kubeconfig"], help: "kubeconfig file (default: in-cluster service account)" },
  { name: "NETCLAIM_LOG_LEVEL", path: ["log", "level"], help: "log level" },
  { name: "NETCLAIM_KUBELET_DIR", path: ["kubelet", "rootDir"], help: "kubelet root directory" },
  { name: "NETCLAIM_NRI_SOCKET", path: ["nri", "socketPath"], help: "NRI socket path" },
  { name: "NETCLAIM_HTTP_PORT", path: ["http", "port"], help: "port of /metrics, /readyz and /livez (0: off; the probes' socket stays)" },
  { name: "NETCLAIM_NETWORK_STATUS", path: ["networkStatus", "enabled"], help: "true: list netclaim's interfaces in pods' network-status annotation" },
  { name: "NETCLAIM_DEVICE_TAINTS", path: ["deviceTaints", "mode"], help: "auto|on|off: taint unhealthy devices in the ResourceSlice (auto: Kubernetes 1.36+)" },
  { name: "NETCLAIM_DEVICE_TAINT_EFFECT", path: ["deviceTaints", "effect"], help: "NoSchedule|NoExecute: what a device taint does (NoExecute evicts the pods using it)" },
];

export async function loadAgentConfig(options: LoadAgentConfigOptions = {}): Promise<AgentConfig> {
  const fromFile = options.file === undefined ? {} : await readConfigFile(options.file);
  const fromEnv = envLayer(options.env ?? {});
  const merged = mergeLayers(mergeLayers(fromFile, fromEnv), options.flags ?? {});
  return parseAgentConfig(merged, options.file);
}

export function parseAgentConfig(input: unknown, source = "configuration"): AgentConfig {
  const result = agentConfigSchema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.length === 0 ? "(top level)" : issue.path.map(String).join(".");
    return `  ${field}: ${issue.message}`;
  });
  throw new AgentConfigError(
    "CONFIG_INVALID",
    `Cannot use ${source}: invalid AgentConfig\n${problems.join("\n")}`,
  );
}

async function readConfigFile(file: string): Promise<ConfigLayer> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new AgentConfigError("CONFIG_READ", `Cannot read config file ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new AgentConfigError("CONFIG_PARSE", `Cannot parse config file ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new AgentConfigError("CONFIG_PARSE", `Cannot use config file ${file}: the document must be a YAML mapping`);
  }
  return doc as ConfigLayer;
}

function envLayer(env: NodeJS.ProcessEnv): ConfigLayer {
  const layer: ConfigLayer = {};
  for (const variable of ENVIRONMENT_VARIABLES) {
    const value = env[variable.name];
    if (value !== undefined && value !== "") setPath(layer, variable.path, value);
  }
  return layer;
}

export function setPath(target: ConfigLayer, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next === "object" && next !== null && !Array.isArray(next)) {
      node = next as ConfigLayer;
    } else {
      const created: ConfigLayer = {};
      node[key] = created;
      node = created;
    }
  }
  const last = path.at(-1);
  if (last !== undefined) node[last] = value;
}

function mergeLayers(base: ConfigLayer, over: ConfigLayer): ConfigLayer {
  const out: ConfigLayer = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] =
      isPlainObject(prev) && isPlainObject(value) ? mergeLayers(prev, value) : value;
  }
  return out;
}

function isPlainObject(v: unknown): v is ConfigLayer {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
