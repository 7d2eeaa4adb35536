/**
 * End-to-end helpers for the real node that hack/node/node.sh runs (kubelet,
 * containerd with NRI, runc, Multus) on the test control plane: kubectl with
 * the cluster's kubeconfig, pods (create, wait, exec, delete), the node side
 * of a pod (sandbox, network namespace, its interfaces), and stand-in NICs.
 *
 * Everything here is asynchronous on purpose: tests run NRI plugins in the
 * same process, and a blocked event loop would miss the runtime's 2 s
 * request deadline.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { cluster } from "../api/harness.ts";

const repo = new URL("../../", import.meta.url).pathname;
const nodeScript = `${repo}hack/node/node.sh`;

/** Images imported into the node's containerd; pods must not pull. */
export const BUSYBOX_IMAGE = "registry.local/netclaim/busybox:latest";
export const MULTUS_NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks";
export const MULTUS_NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";
/**
 * The node's container runtime (NETCLAIM_NODE_RUNTIME, as hack/node/node.sh
 * reads it): the e2e suite runs once per runtime (mk/e2e.mk).
 */
export const NODE_RUNTIME = z.enum(["containerd", "crio"]).parse(process.env.NETCLAIM_NODE_RUNTIME ?? "containerd");
/** What the node's runtime says of itself: in the node's status (CRI) and to NRI plugins. */
export const RUNTIME_IDENTITY = {
  containerd: { criVersion: /^containerd:\/\/2\.3\./, nriName: "containerd", nriVersion: /^v?2\.3\./ },
  crio: { criVersion: /^cri-o:\/\/1\.34\./, nriName: "cri-o", nriVersion: /^v?1\.34\./ },
}[NODE_RUNTIME];
/** The node's name, as hack/node/node.sh picks it for the runtime. */
export const NODE_NAME = process.env.NETCLAIM_NODE_NAME ?? { containerd: "nc-node", crio: "nc-crio" }[NODE_RUNTIME];
/**
 * The real node carries this NoSchedule taint so that other suites' pods and
 * DaemonSets on the shared control plane stay off it; test pods tolerate it.
 */
export const NODE_TAINT_KEY = "netclaim.dev/e2e-node";
/** What a pod needs to run on the real node (busyboxPod adds both). */
export const NODE_PLACEMENT = {
  nodeSelector: { "kubernetes.io/hostname": NODE_NAME },
  tolerations: [{ key: NODE_TAINT_KEY, operator: "Exists", effect: "NoSchedule" }],
} as const;

const nodeEnvSchema = z.object({
  NETCLAIM_KUBECONFIG: z.string().min(1),
  NETCLAIM_KUBE_BIN: z.string().min(1),
  NETCLAIM_NODE_BIN: z.string().min(1),
  NETCLAIM_NODE_NAME: z.literal(NODE_NAME),
  NETCLAIM_NODE_IP: z.string().min(1),
  NETCLAIM_NODE_TAINT: z.literal(NODE_TAINT_KEY),
  NETCLAIM_NRI_SOCKET: z.string().min(1),
  NETCLAIM_KUBELET_DIR: z.string().min(1),
  NETCLAIM_NODE_RUNTIME: z.literal(NODE_RUNTIME),
  NETCLAIM_RUNTIME_SOCKET: z.string().min(1),
  NETCLAIM_CRICTL_CONFIG: z.string().min(1),
  NETCLAIM_CDI_DIR: z.string().min(1),
  NETCLAIM_POD_CIDR: z.string().min(1),
  NETCLAIM_STATIC_POD_DIR: z.string().min(1),
});

export interface NodeEnv {
  readonly kubeconfig: string;
  readonly kubectl: string;
  readonly crictl: string;
  readonly crictlConfig: string;
  readonly nodeName: string;
  readonly nodeIp: string;
  readonly nriSocket: string;
  readonly kubeletDir: string;
  /** The runtime's CRI socket. */
  readonly runtimeSocket: string;
  readonly cdiDir: string;
  /** The default (bridge) network's pod addresses. */
  readonly podCidr: string;
  /** The kubelet's staticPodPath. */
  readonly staticPodDir: string;
}

let nodePromise: Promise<NodeEnv> | undefined;

/**
 * Brings the node up (idempotent, about 2 s when it already runs; the mk
 * prereq normally did it) and returns where its parts are. Once per process.
 */
export function node(): Promise<NodeEnv> {
  nodePromise ??= startNode();
  return nodePromise;
}

async function startNode(): Promise<NodeEnv> {
  const up = await runCommand(nodeScript, ["up"]);
  if (up.code !== 0) throw new Error(`hack/node/node.sh up exited with ${String(up.code)}:\n${up.stderr}`);
  // The control plane as shipped, admission policies enforced: deploy/required-plugin marks pods with claims.
  await cluster();
  const stdout = await mustRun(nodeScript, ["env"]);
  const vars = nodeEnvSchema.parse(Object.fromEntries(stdout.trim().split("\n").map((line) => splitOnce(line, "="))));
  return {
    kubeconfig: vars.NETCLAIM_KUBECONFIG,
    kubectl: `${vars.NETCLAIM_KUBE_BIN}/kubectl`,
    crictl: `${vars.NETCLAIM_NODE_BIN}/crictl`,
    crictlConfig: vars.NETCLAIM_CRICTL_CONFIG,
    nodeName: vars.NETCLAIM_NODE_NAME,
    nodeIp: vars.NETCLAIM_NODE_IP,
    nriSocket: vars.NETCLAIM_NRI_SOCKET,
    kubeletDir: vars.NETCLAIM_KUBELET_DIR,
    runtimeSocket: vars.NETCLAIM_RUNTIME_SOCKET,
    cdiDir: vars.NETCLAIM_CDI_DIR,
    podCidr: vars.NETCLAIM_POD_CIDR,
    staticPodDir: vars.NETCLAIM_STATIC_POD_DIR,
  };
}

/**
 * Restarts the node's kubelet or container runtime (hack/node/node.sh
 * restart) and waits until the node is Ready again; running pods stay. Other
 * test files may run at the same time: only use this where they can tolerate it.
 */
export async function restartNodeComponent(component: "kubelet" | "runtime"): Promise<void> {
  await node();
  await mustRun(nodeScript, ["restart", component]);
}

/** An OCI archive's image into the node runtime's images under `reference` (never pulled). */
export async function loadNodeImage(archive: string, reference: string): Promise<void> {
  await node();
  await mustRun(nodeScript, ["image-load", archive, reference]);
}

/** The node runtime's image `reference` under a second reference too. */
export async function tagNodeImage(reference: string, newReference: string): Promise<void> {
  await node();
  await mustRun(nodeScript, ["image-tag", reference, newReference]);
}

function splitOnce(line: string, separator: string): [string, string] {
  const at = line.indexOf(separator);
  return at < 0 ? [line, ""] : [line.slice(0, at), line.slice(at + 1)];
}

/** A name no other test run uses: `<prefix>-<6 hex>`, valid for pods, NADs and (≤ 15 chars) links. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString("hex")}`;
}

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

/** Runs a command, feeding `input` to its stdin; never throws for a non-zero exit. */
export function runCommand(file: string, args: readonly string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      resolve({ stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString(), code: code ?? -1 });
    });
    if (input !== undefined) {
      // A command may exit before reading all of its input; its exit code tells.
      child.stdin?.on("error", () => undefined);
      child.stdin?.end(input);
    }
  });
}

async function mustRun(file: string, args: readonly string[], input?: string): Promise<string> {
  const result = await runCommand(file, args, input);
  if (result.code !== 0) {
    throw new Error(`${file.split("/").pop() ?? file} ${args.join(" ")} exited with ${String(result.code)}: ${result.stderr.trim()}`);
  }
  return result.stdout;
}

/** kubectl against the test cluster; throws with kubectl's stderr on failure. */
export async function kubectl(args: readonly string[], input?: string): Promise<string> {
  const env = await node();
  return mustRun(env.kubectl, ["--kubeconfig", env.kubeconfig, ...args], input);
}

export async function kubectlJson<T>(args: readonly string[], schema: z.ZodType<T>): Promise<T> {
  return schema.parse(JSON.parse(await kubectl([...args, "-o", "json"])));
}

export type Manifest = Readonly<Record<string, unknown>>;

export async function apply(...manifests: readonly Manifest[]): Promise<void> {
  await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: manifests }));
}

/** Deletes and waits until the objects are gone (for pods: containers stopped, CNI DEL done). */
export async function deleteObjects(resource: string, names: readonly string[], namespace = "default"): Promise<void> {
  if (names.length === 0) return;
  await kubectl(["delete", resource, "-n", namespace, "--ignore-not-found", "--wait", "--timeout", "120s", ...names]);
}

// ---------------------------------------------------------------- pods

export interface BusyboxPodOptions {
  readonly name: string;
  readonly namespace?: string;
  /** Multus secondary networks (`k8s.v1.cni.cncf.io/networks`), e.g. `["default/macvlan-a"]`. */
  readonly networks?: readonly string[];
  readonly annotations?: Readonly<Record<string, string>>;
  readonly labels?: Readonly<Record<string, string>>;
  /** Extra pod spec fields (e.g. `resourceClaims`), merged over the defaults. */
  readonly spec?: Readonly<Record<string, unknown>>;
  /** Extra fields of the one container (e.g. `resources.claims`). */
  readonly container?: Readonly<Record<string, unknown>>;
}

/**
 * A pod that sleeps until deleted, on the test node, from the local busybox
 * image. Its shell exits on SIGTERM, so deletion takes about a second.
 */
export function busyboxPod(options: BusyboxPodOptions): Manifest {
  const annotations: Record<string, string> = { ...options.annotations };
  if (options.networks !== undefined && options.networks.length > 0) {
    annotations[MULTUS_NETWORKS_ANNOTATION] = options.networks.join(",");
  }
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: options.name,
      namespace: options.namespace ?? "default",
      labels: { "netclaim.dev/test": "e2e", ...options.labels },
      annotations,
    },
    spec: {
      terminationGracePeriodSeconds: 5,
      ...NODE_PLACEMENT,
      containers: [
        {
          name: "main",
          image: BUSYBOX_IMAGE,
          imagePullPolicy: "Never",
          command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"],
          // busybox's ping opens a raw socket; CRI-O's default capabilities (and OpenShift's)
          // leave NET_RAW out, containerd's have it.
          securityContext: { capabilities: { add: ["NET_RAW"] } },
          ...options.container,
        },
      ],
      ...options.spec,
    },
  };
}

const podSchema = z.object({
  metadata: z.object({
    name: z.string(),
    namespace: z.string(),
    uid: z.string(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  spec: z.object({ nodeName: z.string().optional() }),
  status: z.object({
    phase: z.string().optional(),
    podIP: z.string().optional(),
    podIPs: z.array(z.object({ ip: z.string() })).optional(),
    conditions: z.array(z.object({ type: z.string(), status: z.string(), reason: z.string().optional(), message: z.string().optional() })).optional(),
  }),
});
export type Pod = z.infer<typeof podSchema>;

export function getPod(name: string, namespace = "default"): Promise<Pod> {
  return kubectlJson(["get", "pod", "-n", namespace, name], podSchema);
}

/** Waits until every pod is Ready; on timeout the error carries each pod's recent events. */
export async function waitForPodsReady(names: readonly string[], namespace = "default", timeoutSeconds = 120): Promise<void> {
  if (names.length === 0) return;
  const pods = names.map((name) => `pod/${name}`);
  try {
    await kubectl(["wait", "-n", namespace, "--for", "condition=Ready", "--timeout", `${String(timeoutSeconds)}s`, ...pods]);
  } catch (error) {
    const events = await kubectl(["get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=Pod", "--sort-by", ".lastTimestamp"]).catch(() => "");
    const relevant = events.split("\n").filter((line) => names.some((name) => line.includes(name))).slice(-20);
    throw new Error(`pods ${names.join(", ")} not Ready in ${String(timeoutSeconds)}s; events:\n${relevant.join("\n")}`, { cause: error });
  }
}

export function deletePods(names: readonly string[], namespace = "default"): Promise<void> {
  return deleteObjects("pod", names, namespace);
}

/** `kubectl exec` in the pod's (first) container; returns the result whatever the exit code. */
export async function execInPod(name: string, command: readonly string[], options: { namespace?: string; container?: string } = {}): Promise<CommandResult> {
  const env = await node();
  const container = options.container === undefined ? [] : ["-c", options.container];
  return runCommand(env.kubectl, ["--kubeconfig", env.kubeconfig, "exec", "-n", options.namespace ?? "default", name, ...container, "--", ...command]);
}

/** Pings `address` from inside the pod; true when at least one reply came back. */
export async function podCanPing(name: string, address: string, options: { namespace?: string; count?: number } = {}): Promise<boolean> {
  const count = String(options.count ?? 2);
  const result = await execInPod(name, ["ping", "-c", count, "-W", "2", address], options);
  return result.code === 0;
}

const networkStatusSchema = z.array(
  z.object({
    name: z.string(),
    interface: z.string().optional(),
    ips: z.array(z.string()).optional(),
    mac: z.string().optional(),
    mtu: z.number().optional(),
    default: z.boolean().optional(),
    "device-info": z.unknown().optional(),
  }),
);
export type NetworkStatus = z.infer<typeof networkStatusSchema>;

/** The pod's `k8s.v1.cni.cncf.io/network-status` annotation as the API server has it, byte for byte; throws when absent. */
export async function networkStatusText(name: string, namespace = "default"): Promise<string> {
  const pod = await getPod(name, namespace);
  const raw = pod.metadata.annotations?.[MULTUS_NETWORK_STATUS_ANNOTATION];
  if (raw === undefined) throw new Error(`pod ${namespace}/${name} has no ${MULTUS_NETWORK_STATUS_ANNOTATION} annotation`);
  return raw;
}

/** The pod's `k8s.v1.cni.cncf.io/network-status` annotation, parsed; throws when absent. */
export async function networkStatus(name: string, namespace = "default"): Promise<NetworkStatus> {
  return networkStatusText(name, namespace).then((raw) => networkStatusSchema.parse(JSON.parse(raw)));
}

// ---------------------------------------------------------------- node side

export async function crictl(args: readonly string[]): Promise<string> {
  const env = await node();
  return mustRun(env.crictl, ["--config", env.crictlConfig, ...args]);
}

const sandboxSchema = z.object({
  status: z.object({ id: z.string(), state: z.string() }),
  info: z.object({
    runtimeSpec: z.object({
      linux: z.object({ namespaces: z.array(z.object({ type: z.string(), path: z.string().optional() })) }),
    }),
  }),
});

export interface PodSandbox {
  readonly id: string;
  /** The network namespace the runtime made for the pod (under the node's directory). */
  readonly netnsPath: string;
}

/**
 * The pod's ready sandbox as the runtime sees it (`crictl inspectp`). CRI-O
 * runs no pause process (drop_infra_ctr, its default and OpenShift's): the
 * network namespace is a pinned mount only.
 */
export async function podSandbox(name: string, namespace = "default"): Promise<PodSandbox> {
  const ids = (await crictl(["pods", "--name", `^${name}$`, "--namespace", `^${namespace}$`, "--state", "ready", "-q"])).trim().split("\n").filter(Boolean);
  if (ids.length !== 1) throw new Error(`expected one ready sandbox for pod ${namespace}/${name}, found ${String(ids.length)}`);
  const sandbox = sandboxSchema.parse(JSON.parse(await crictl(["inspectp", "-o", "json", ids[0] ?? ""])));
  const netns = sandbox.info.runtimeSpec.linux.namespaces.find((ns) => ns.type === "network")?.path;
  if (netns === undefined) throw new Error(`sandbox of pod ${namespace}/${name} has no network namespace path (host network?)`);
  return { id: sandbox.status.id, netnsPath: netns };
}

const containerInspectSchema = z.object({ status: z.object({ startedAt: z.string() }) });

/**
 * When the pod's main container started, in epoch milliseconds (sub-ms
 * precision), from containerd's own record: finer than the API's
 * second-granular timestamps and free of the kubelet's 1 s status relist.
 */
export async function containerStartedAt(podName: string, namespace = "default"): Promise<number> {
  const ids = (await crictl(["ps", "--label", `io.kubernetes.pod.name=${podName}`, "--label", `io.kubernetes.pod.namespace=${namespace}`, "-q"])).trim().split("\n").filter(Boolean);
  if (ids.length !== 1) throw new Error(`expected one running container in pod ${namespace}/${podName}, found ${String(ids.length)}`);
  const { status } = containerInspectSchema.parse(JSON.parse(await crictl(["inspect", "-o", "json", ids[0] ?? ""])));
  // RFC 3339 with nanoseconds; Date keeps milliseconds, the rest is added back.
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(status.startedAt);
  if (match === null) throw new Error(`container ${ids[0] ?? ""} has an unparsable startedAt ${status.startedAt}`);
  const fraction = Number(`0.${match[2] ?? "0"}`);
  return Date.parse(`${match[1] ?? ""}Z`) + fraction * 1000;
}

const ipAddrSchema = z.array(
  z.object({
    ifname: z.string(),
    address: z.string().optional(),
    mtu: z.number(),
    flags: z.array(z.string()),
    linkinfo: z.object({ info_kind: z.string().optional() }).optional(),
    addr_info: z.array(z.object({ family: z.string(), local: z.string(), prefixlen: z.number(), scope: z.string() })),
  }),
);

export interface NetnsInterface {
  readonly name: string;
  readonly mac: string | undefined;
  readonly mtu: number;
  readonly up: boolean;
  /** The link kind (veth, macvlan, …); undefined for plain devices like lo. */
  readonly kind: string | undefined;
  /** Global-scope addresses as `address/prefix`. */
  readonly addresses: readonly string[];
}

/** The interfaces in a network namespace, read from the host with nsenter and `ip -json`. */
export async function netnsInterfaces(netnsPath: string): Promise<NetnsInterface[]> {
  const stdout = await mustRun("nsenter", [`--net=${netnsPath}`, "ip", "-json", "-details", "address", "show"]);
  return ipAddrSchema.parse(JSON.parse(stdout)).map((link) => ({
    name: link.ifname,
    mac: link.address,
    mtu: link.mtu,
    up: link.flags.includes("UP"),
    kind: link.linkinfo?.info_kind,
    addresses: link.addr_info.filter((a) => a.scope === "global").map((a) => `${a.local}/${String(a.prefixlen)}`),
  }));
}

/** The interface `name` in the pod's network namespace, or undefined. */
export async function podInterface(pod: string, name = "dra0", namespace = "default"): Promise<NetnsInterface | undefined> {
  return (await netnsInterfaces((await podSandbox(pod, namespace)).netnsPath)).find((l) => l.name === name);
}

/**
 * Host devices as a restore must leave them: name, MTU, MAC, addresses and the routes a user
 * added over them (any table), sorted by name; a missing one is absent.
 */
export async function hostDevices(names: readonly string[]): Promise<{ name: string; mtu: number; mac: string | undefined; addresses: string[]; routes: string[] }[]> {
  const { stdout } = await runCommand("ip", ["-json", "addr"]);
  const links = JSON.parse(stdout) as { ifname: string; mtu: number; address?: string; addr_info?: { local: string; prefixlen: number }[] }[];
  const found = links.filter((l) => names.includes(l.ifname)).sort((a, b) => a.ifname.localeCompare(b.ifname));
  return Promise.all(found.map(async (l) => ({
    name: l.ifname,
    mtu: l.mtu,
    mac: l.address,
    addresses: (l.addr_info ?? []).map((a) => `${a.local}/${String(a.prefixlen)}`).sort(),
    routes: await userRoutes(l.ifname),
  })));
}

/** The routes over `device` that were added by hand (protocol boot), in every table. */
async function userRoutes(device: string): Promise<string[]> {
  const { stdout } = await runCommand("ip", ["-json", "route", "show", "table", "all", "dev", device, "proto", "boot"]);
  const routes = JSON.parse(stdout || "[]") as { dst: string; gateway?: string; table?: string }[];
  return routes.map((r) => `${r.dst} via ${r.gateway ?? "-"} table ${r.table ?? "main"}`).sort();
}

/**
 * Gives a stand-in NIC host state a restore must put back: MTU 1450, an address in
 * 198.18.250.0/28 (host number `n`, 1 to 13), up, and a route over it in table 3100 + `n`, off
 * the host's own routing.
 */
export async function configureHostSide(name: string, n: number): Promise<void> {
  for (const args of [
    ["link", "set", name, "mtu", "1450", "up"],
    ["addr", "add", `198.18.250.${String(n)}/28`, "dev", name],
    ["route", "add", "198.18.251.0/28", "via", "198.18.250.14", "dev", name, "table", String(3100 + n)],
  ]) await mustRun("ip", args);
}

/** Polls `check` every 200 ms until it returns true; throws naming `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}`);
    await sleep(200);
  }
}

/** Whether a path still exists on the host (a removed netns, a released IPAM lease). */
export async function pathExists(path: string): Promise<boolean> {
  return (await runCommand("test", ["-e", path])).code === 0;
}

// ---------------------------------------------------------------- stand-in NICs and networks

export interface HostVeth {
  /** The end that stays on the host, usable as a macvlan master. */
  readonly name: string;
  readonly peer: string;
  remove(): Promise<void>;
}

/** A veth pair on the host, both ends up, as a stand-in NIC. `name` ≤ 13 characters (the peer adds "p"). */
export async function createHostVeth(name: string): Promise<HostVeth> {
  if (name.length > 13) throw new Error(`veth name ${name} is longer than 13 characters`);
  const peer = `${name}p`;
  await mustRun("ip", ["link", "add", name, "type", "veth", "peer", "name", peer]);
  await mustRun("ip", ["link", "set", name, "up"]);
  await mustRun("ip", ["link", "set", peer, "up"]);
  return {
    name,
    peer,
    async remove() {
      await runCommand("ip", ["link", "delete", name]);
    },
  };
}

export interface AddressRange {
  readonly subnet: string;
  readonly rangeStart: string;
  readonly rangeEnd: string;
}

/**
 * host-local's leases: its default dataDir, which the node's Multus and the agent's DaemonSet
 * (its /var/lib/cni mount) share, as on any node. `hack/node/node.sh down` removes it where the
 * node made it.
 */
export const HOST_LOCAL_DIR = "/var/lib/cni/networks";

/** A NetworkAttachmentDefinition for a bridge-mode macvlan on `master`, addresses from host-local. */
export function macvlanNetwork(name: string, master: string, range: AddressRange, namespace = "default"): Manifest {
  const config = { cniVersion: "1.0.0", name, type: "macvlan", master, mode: "bridge", ipam: { type: "host-local", ranges: [[range]] } };
  return {
    apiVersion: "k8s.cni.cncf.io/v1",
    kind: "NetworkAttachmentDefinition",
    metadata: { name, namespace, labels: { "netclaim.dev/test": "e2e" } },
    spec: { config: JSON.stringify(config) },
  };
}

/** Deletes a NetworkAttachmentDefinition made by macvlanNetwork and its (by then empty) host-local state. */
export async function deleteNetwork(name: string, namespace = "default"): Promise<void> {
  await deleteObjects("network-attachment-definitions.k8s.cni.cncf.io", [name], namespace);
  await rm(`${HOST_LOCAL_DIR}/${name}`, { recursive: true, force: true });
}

/** The address part of `address/prefix`. */
export function addressOnly(cidr: string): string {
  return cidr.split("/")[0] ?? cidr;
}

/** Runs registered cleanups in reverse order, all of them, then reports the first failure. */
export class Cleanup {
  readonly #steps: (() => Promise<void>)[] = [];

  defer(step: () => Promise<void>): void {
    this.#steps.push(step);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, "cleanup failed");
  }
}
