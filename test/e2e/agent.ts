/**
 * The netclaim agent on the real node, installed as users install it: its
 * image (`make image`) imported into the node's runtime and the shipped
 * objects applied (the kustomize overlay of the node's platform, Kubernetes
 * on containerd and OpenShift on CRI-O, or the Helm chart), so it runs as the
 * DaemonSet's pod with its own ServiceAccount token, RBAC and admission
 * policies.
 *
 * What the tests change in the shipped objects is what `hack/node/node.sh
 * helm-values` says, as a user whose runtime or kubelet keeps its paths
 * elsewhere would change it:
 * - host paths: the test node keeps the kubelet in /var/lib/nc-kubelet (or
 *   nc-crio-kubelet), the NRI socket, pod network namespaces and CDI specs
 *   under /tmp/nc-node (or nc-crio), and CNI plugins in /usr/lib/cni;
 * - the API server: the test cluster has no Service network, so the agent
 *   reaches the API server on the node's loopback (KUBERNETES_SERVICE_HOST);
 * - the image is never pulled (imagePullPolicy Never), and the pod is pinned
 *   to the test node (the suites' other Node objects have no kubelet).
 * And per test: the devices it publishes (the stand-in NICs are veths) and,
 * with the overlay, state and journal directories of its own, so that test
 * files do not see each other's.
 *
 * Stopping and starting the agent are what they are in a cluster: the
 * DaemonSet's pod is deleted (its nodeSelector moved off the node) and
 * created again. A crash is the agent's process killed at a point the test
 * chooses, and its pod then deleted without the agent running another
 * instruction, so nothing restarts it before the test says so.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import { parse, parseAllDocuments, stringify as toYaml } from "yaml";
import { z } from "zod";
import { NODE_RUNTIME, crictl, eventually, kubectl, kubectlJson, loadNodeImage, node, runCommand, tagNodeImage, type Manifest } from "./harness.ts";

const repo = new URL("../../", import.meta.url).pathname;

export const AGENT_IMAGE = "ghcr.io/netclaim/netclaim:v0.1.0";
export const AGENT_DAEMONSET = "netclaim-agent";
const AGENT_CONFIGMAP = "netclaim-agent-config";
const AGENT_POD_SELECTOR = "app.kubernetes.io/name=netclaim-agent";
/** A node label no node has: the DaemonSet's nodeSelector while the agent is stopped. */
const STOPPED_SELECTOR = { "netclaim.dev/e2e-agent": "stopped" };
const HELM_RELEASE = "netclaim";
/** The overlay a user of the node's platform applies: OpenShift's on CRI-O, as OpenShift runs it. */
const OVERLAY = NODE_RUNTIME === "crio" ? "deploy/overlays/openshift" : "deploy/overlays/kubernetes";
const HELM_RELEASE_NAMESPACE = "default";

export interface AgentOptions {
  /** Host interfaces to publish, as an ifName glob. */
  nicGlob: string;
  /**
   * "kustomize" (the default): `kubectl apply` of the node's overlay (OVERLAY), as
   * docs/install.md says; "helm": `helm install` of deploy/helm/netclaim, the
   * release recorded in namespace default.
   */
  installer?: "kustomize" | "helm";
  /** The image the DaemonSet runs (default AGENT_IMAGE, which `make image` builds). */
  image?: string;
  /**
   * The network-status opt-in (docs/multus.md), as a user turns it on: the overlay with
   * deploy/components/network-status, or the chart's networkStatus.enabled.
   */
  networkStatus?: boolean;
  /** Host interfaces (an ifName glob) published as shared parents with this `share` block (docs/devices.md), before `nicGlob`'s. */
  sharedParents?: { ifName: string; share: Record<string, unknown> };
}

type Json = Record<string, unknown>;

const nodeValuesSchema = z.object({
  image: z.object({ pullPolicy: z.string() }),
  nodeSelector: z.record(z.string(), z.string()),
  kubelet: z.object({ rootDir: z.string() }),
  nri: z.object({ socketPath: z.string() }),
  cdi: z.object({ specDir: z.string() }),
  netns: z.object({ dir: z.string() }),
  cni: z.object({ binDir: z.string(), confDir: z.string() }),
  env: z.array(z.object({ name: z.string(), value: z.string() })),
});
type NodeValues = z.infer<typeof nodeValuesSchema>;

let nodeValuesText: Promise<string> | undefined;

/**
 * The chart's values for the test node (`hack/node/node.sh helm-values`): the one place that
 * says where the node keeps what a standard node keeps elsewhere. The Helm installation uses
 * them as they are; the overlay is changed to match them.
 */
async function nodeValues(): Promise<{ text: string; values: NodeValues }> {
  nodeValuesText ??= (async () => {
    await node();
    const printed = await runCommand(join(repo, "hack/node/node.sh"), ["helm-values"]);
    if (printed.code !== 0) throw new Error(`hack/node/node.sh helm-values: ${printed.stderr}`);
    return printed.stdout;
  })();
  const text = await nodeValuesText;
  return { text, values: nodeValuesSchema.parse(parse(text)) };
}

let imported: Promise<void> | undefined;

/** build/image/netclaim.tar into the node runtime's images, once per process. */
export function importAgentImage(): Promise<void> {
  imported ??= (async () => {
    const archive = join(repo, "build/image/netclaim.tar");
    if (!existsSync(archive)) throw new Error(`${archive} is missing: run make image (the e2e suite's prerequisite)`);
    await loadNodeImage(archive, AGENT_IMAGE);
  })();
  return imported;
}

/** The agent's image under another reference (an "upgrade" to a new tag). */
export async function tagAgentImage(target: string): Promise<void> {
  await importAgentImage();
  await tagNodeImage(AGENT_IMAGE, target);
}

const agentPodsSchema = z.object({
  items: z.array(z.object({
    metadata: z.object({ name: z.string(), uid: z.string(), deletionTimestamp: z.string().optional() }),
    spec: z.object({ containers: z.array(z.object({ image: z.string() })) }),
    status: z.object({
      conditions: z.array(z.object({ type: z.string(), status: z.string() })).optional(),
      containerStatuses: z.array(z.object({ restartCount: z.number() })).optional(),
    }),
  })),
});
export type AgentPod = z.infer<typeof agentPodsSchema>["items"][number];

export function podReady(pod: AgentPod): boolean {
  return pod.status.conditions?.find((c) => c.type === "Ready")?.status === "True";
}

export class E2eAgent {
  /** Host directory of this agent's files; its state directory is `${dir}/state`. */
  readonly dir: string;
  /** The agent's prepared-claims state (the DaemonSet's /var/lib/netclaim). */
  readonly stateDir: string;
  /** The agent's journal and attach gates, on a tmpfs as /run is on a node; the same path in its pod. */
  readonly runtimeDir: string;
  readonly namespace = "netclaim";
  readonly #options: AgentOptions;
  /** The shipped directories this agent uses that existed before it: an uninstall leaves those. */
  readonly #preexisting: ReadonlySet<string>;
  #installed = false;
  #paused = false;
  #pod: AgentPod | undefined;

  private constructor(dir: string, options: AgentOptions) {
    this.dir = dir;
    // The chart is installed with its shipped state and runtime directories.
    const helm = options.installer === "helm";
    this.stateDir = helm ? "/var/lib/netclaim" : join(dir, "state");
    this.runtimeDir = helm ? "/run/netclaim" : join("/dev/shm", basename(dir));
    this.#options = options;
    this.#preexisting = new Set([this.stateDir, this.runtimeDir].filter((path) => existsSync(path)));
  }

  /** Installs the agent and waits until it is ready: registered with the kubelet, connected to NRI, slices published. */
  static async start(options: AgentOptions): Promise<E2eAgent> {
    const agent = new E2eAgent(await mkdtemp("/tmp/nc-e2e-agent-"), options);
    try {
      await agent.start();
    } catch (error) {
      // The caller gets no agent to clean up: leave nothing installed for the next test.
      await agent.remove().catch(() => undefined);
      throw error;
    }
    return agent;
  }

  /** The DaemonSet's pod at its last start. */
  get pod(): AgentPod {
    if (this.#pod === undefined) throw new Error("the agent has not started");
    return this.#pod;
  }

  /** Installs the agent, or gives the stopped DaemonSet its node back; resolves once the new pod's agent is ready. */
  async start(): Promise<void> {
    await importAgentImage();
    if (this.#installed) {
      await this.#placeOn({ "kubernetes.io/hostname": (await node()).nodeName });
    } else {
      await refuseBesideHelmRelease();
      if (this.#options.installer !== "helm") await this.#applyOverlay();
      else await this.#helmInstall();
      this.#installed = true;
    }
    this.#pod = await this.waitForReadyPod();
  }

  /**
   * Waits for a pod of the DaemonSet that is not terminating and whose agent answers /readyz with 200
   * (the previous pod is gone: the endpoint is the node's port 9402).
   */
  async waitForReadyPod(timeoutMs = 120_000): Promise<AgentPod> {
    let found: AgentPod | undefined;
    try {
      await eventually(`the netclaim agent's pod ready in ${this.namespace}`, async () => {
        const pods = (await this.pods()).filter((p) => p.metadata.deletionTimestamp === undefined);
        if (pods.length !== 1 || (await agentEndpoint("/readyz")).status !== 200) return false;
        found = pods[0];
        return true;
      }, timeoutMs);
    } catch (error) {
      const env = await node();
      const described = await runCommand(env.kubectl, ["--kubeconfig", env.kubeconfig, "describe", "pods", "-n", this.namespace, "-l", AGENT_POD_SELECTOR]);
      throw new Error(`${String(error)}\n${described.stdout.slice(-3000)}\n/readyz: ${(await agentEndpoint("/readyz")).body}`, { cause: error });
    }
    if (found === undefined) throw new Error("unreachable: eventually resolved without a pod");
    return found;
  }

  async pods(): Promise<AgentPod[]> {
    return (await kubectlJson(["get", "pods", "-n", this.namespace, "-l", AGENT_POD_SELECTOR], agentPodsSchema)).items;
  }

  /** The engine's journal records (one file per attachment); a journal directory that is missing fails the test rather than reading as empty. */
  async journal(): Promise<string[]> {
    return (await readdir(join(this.runtimeDir, "attachments"))).filter((n) => n.endsWith(".json"));
  }

  /** The current pod's log (its agent's JSON lines since it started). */
  async logs(): Promise<string> {
    const result = await runCommand((await node()).kubectl, ["--kubeconfig", (await node()).kubeconfig, "logs", "-n", this.namespace, this.pod.metadata.name]);
    return result.stdout;
  }

  /** Waits until the kubelet has registered this run of the agent (its plugin watcher saw the socket). */
  async registered(timeoutMs = 30_000): Promise<void> {
    await eventually("the kubelet to register the agent", async () => (await this.logs()).includes("registered with the kubelet"), timeoutMs);
  }

  /** The agent's process on the host (the pod uses the host's PID namespace). */
  async pid(): Promise<number> {
    const id = (await crictl(["ps", "-q", "--label", `io.kubernetes.pod.uid=${this.pod.metadata.uid}`])).trim();
    if (id === "" || id.includes("\n")) throw new Error(`expected one running container in the agent's pod ${this.pod.metadata.name}, found ${JSON.stringify(id)}`);
    const inspected = z.object({ info: z.object({ pid: z.number().int().positive() }) }).parse(JSON.parse(await crictl(["inspect", id])));
    return inspected.info.pid;
  }

  /** SIGSTOP: the agent stays connected to the kubelet and the runtime but answers nothing. */
  async pause(): Promise<void> {
    (await this.pauser())();
  }

  /**
   * pause() in two halves: the agent's process looked up now (a runtime round trip), and a
   * function that freezes it at once, for a test that must freeze it within milliseconds of
   * something it sees.
   */
  async pauser(): Promise<() => void> {
    const pid = await this.pid();
    return () => {
      process.kill(pid, "SIGSTOP");
      this.#paused = true;
    };
  }

  /**
   * "SIGTERM": the pod deleted, as the DaemonSet does when the node leaves its
   * nodeSelector; the agent stops as it would in a drain. "SIGKILL": a crash,
   * after which the pod is gone and nothing restarts the agent until start().
   */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    if (this.#pod === undefined) return;
    const pid = await this.pid();
    if (signal === "SIGKILL") {
      // Frozen first, so that the kubelet sees a live container and restarts nothing, and
      // the agent runs no instruction after this point: the kill below is the crash.
      process.kill(pid, "SIGSTOP");
      await this.#placeOn(STOPPED_SELECTOR);
      // The kubelet's SIGTERM for the deleted pod shows as pending: only then is a dead
      // container no longer one to restart.
      await eventually("the kubelet to stop the agent's pod", () => signalPending(pid, 15), 60_000);
      process.kill(pid, "SIGKILL");
    } else {
      await this.#placeOn(STOPPED_SELECTOR);
      if (this.#paused) {
        // A paused agent handles the kubelet's SIGTERM once it runs again.
        await eventually("the kubelet to stop the agent's pod", () => signalPending(pid, 15), 60_000);
        process.kill(pid, "SIGCONT");
      }
    }
    await eventually("the agent's pod gone", async () => (await this.pods()).length === 0, 120_000);
    this.#pod = undefined;
    this.#paused = false;
  }

  /**
   * Rolls the DaemonSet to another image (`kubectl set image`, as an upgrade does) and waits
   * until the rollout is done and only the new pod is left.
   */
  async rollTo(image: string): Promise<void> {
    await kubectl(["set", "image", "-n", this.namespace, `daemonset/${AGENT_DAEMONSET}`, `agent=${image}`]);
    await kubectl(["rollout", "status", "-n", this.namespace, `daemonset/${AGENT_DAEMONSET}`, "--timeout", "300s"]);
    await eventually("the old agent's pod gone", async () => (await this.pods()).length === 1, 120_000);
    this.#pod = await this.waitForReadyPod();
  }

  /**
   * Uninstalls as docs/install.md says: the DaemonSet first, until its pod is gone (the stopping
   * agent keeps the permissions its last writes need), then `kubectl delete -k` of the overlay or
   * `helm uninstall`, waiting until all is gone.
   */
  async uninstall(): Promise<void> {
    if (this.#installed) {
      await kubectl(["delete", "daemonset", AGENT_DAEMONSET, "-n", this.namespace, "--ignore-not-found", "--cascade=foreground", "--wait", "--timeout", "180s"]);
      await eventually("the agent's pod gone", async () => (await this.pods()).length === 0, 120_000);
      if (this.#options.installer !== "helm") {
        await this.#deleteOverlay();
      } else {
        const helm = await helmBinary();
        const result = await runCommand(helm, ["uninstall", HELM_RELEASE, "--namespace", HELM_RELEASE_NAMESPACE, "--kubeconfig", (await node()).kubeconfig, "--wait", "--cascade", "foreground", "--timeout", "180s"]);
        if (result.code !== 0) throw new Error(`helm uninstall: ${result.stderr}`);
      }
      this.#installed = false;
      this.#pod = undefined;
    }
  }

  /** Uninstalls and removes this agent's directories. */
  async remove(): Promise<void> {
    await this.uninstall();
    for (const path of [this.dir, this.stateDir, this.runtimeDir]) {
      if (!this.#preexisting.has(path)) await rm(path, { recursive: true, force: true });
    }
  }

  /** Which devices this agent publishes: the stand-in NICs are veths, which the guard keeps back unless a rule opts in. */
  get #devices(): Json {
    const shared = this.#options.sharedParents;
    const whole = { ifName: this.#options.nicGlob, kinds: ["veth"] };
    return { include: shared === undefined ? [whole] : [{ ifName: shared.ifName, kinds: ["veth"], share: shared.share }, whole] };
  }

  /**
   * The node's overlay as shipped, changed as a user of the node would change it (the
   * file's comment): what the node's Helm values say, and this agent's own directories.
   */
  async overlay(): Promise<Json[]> {
    const env = await node();
    const { values } = await nodeValues();
    const { stdout } = await runCommand(env.kubectl, ["kustomize", await this.#kustomization()]);
    const objects = parseAllDocuments(stdout).flatMap((doc) => (doc.contents === null ? [] : [doc.toJS() as Json]));
    const hostPaths: Record<string, string> = {
      state: this.stateDir,
      runtime: this.runtimeDir,
      "kubelet-plugins": join(values.kubelet.rootDir, "plugins"),
      "kubelet-registry": join(values.kubelet.rootDir, "plugins_registry"),
      nri: dirname(values.nri.socketPath),
      cdi: values.cdi.specDir,
      netns: values.netns.dir,
      "cni-bin": values.cni.binDir,
      "cni-conf": values.cni.confDir,
    };
    // Paths the agent hands to the kubelet and the runtime (sockets, CDI specs and the mount
    // sources in them) and paths the runtime hands to the agent (pod namespaces) are mounted at
    // the host's own path; the agent's configuration names them.
    const samePath = new Set(["kubelet-plugins", "kubelet-registry", "nri", "runtime", "cdi", "netns"]);
    const agentConfig = {
      apiVersion: "netclaim.dev/v1alpha1",
      kind: "AgentConfig",
      runtimeDir: this.runtimeDir,
      kubelet: { rootDir: values.kubelet.rootDir },
      nri: { socketPath: values.nri.socketPath },
      cdi: { specDir: values.cdi.specDir },
      devices: this.#devices,
    };
    for (const object of objects) {
      const metadata = object["metadata"] as Json;
      if (object["kind"] === "ConfigMap" && metadata["name"] === AGENT_CONFIGMAP) object["data"] = { "agent.yaml": JSON.stringify(agentConfig) };
      if (object["kind"] !== "DaemonSet") continue;
      const pod = ((object["spec"] as Json)["template"] as Json)["spec"] as Json;
      pod["nodeSelector"] = values.nodeSelector;
      for (const volume of pod["volumes"] as { name: string; hostPath?: { path: string } }[]) {
        const path = hostPaths[volume.name];
        if (path !== undefined && volume.hostPath !== undefined) volume.hostPath.path = path;
      }
      const [container] = pod["containers"] as Json[];
      if (container === undefined) throw new Error("the shipped DaemonSet has no container");
      container["image"] = this.#options.image ?? AGENT_IMAGE;
      container["imagePullPolicy"] = values.image.pullPolicy;
      container["env"] = [...(container["env"] as Json[]), ...values.env];
      for (const mount of container["volumeMounts"] as { name: string; mountPath: string }[]) {
        const path = hostPaths[mount.name];
        if (path !== undefined && samePath.has(mount.name)) mount.mountPath = path;
      }
    }
    return objects;
  }

  /** The shipped overlay, in a kustomization of the test's own with the opt-in's component when it is on. */
  async #kustomization(): Promise<string> {
    if (this.#options.networkStatus !== true) return join(repo, OVERLAY);
    const dir = join(this.dir, "kustomize");
    await mkdir(dir, { recursive: true });
    // kustomize takes no absolute paths to other kustomizations.
    const from = (path: string) => relative(dir, join(repo, path));
    await writeFile(join(dir, "kustomization.yaml"), JSON.stringify({ resources: [from(OVERLAY)], components: [from("deploy/components/network-status")] }));
    return dir;
  }

  async #applyOverlay(): Promise<void> {
    await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: await this.overlay() }));
  }

  async #deleteOverlay(): Promise<void> {
    await kubectl(["delete", "--ignore-not-found", "--wait", "--timeout", "180s", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: await this.overlay() }));
  }

  async #helmInstall(): Promise<void> {
    const env = await node();
    const [repository, tag] = splitImage(this.#options.image ?? AGENT_IMAGE);
    const nodeValuesFile = join(this.dir, "node-values.yaml");
    await writeFile(nodeValuesFile, (await nodeValues()).text);
    const valuesFile = join(this.dir, "values.yaml");
    await writeFile(valuesFile, toYaml({ image: { repository, tag }, devices: this.#devices, networkStatus: { enabled: this.#options.networkStatus === true } }));
    // Helm takes over no object that `kubectl apply` made (docs/install.md): the shared test
    // cluster has the overlay's objects (test/api's harness applies them).
    await this.#deleteOverlay();
    const result = await runCommand(await helmBinary(), [
      "install", HELM_RELEASE, join(repo, "deploy/helm/netclaim"), "--namespace", HELM_RELEASE_NAMESPACE, "--kubeconfig", env.kubeconfig,
      "--values", nodeValuesFile, "--values", valuesFile,
    ]);
    if (result.code !== 0) throw new Error(`helm install: ${result.stderr}`);
  }

  async #placeOn(nodeSelector: Record<string, string>): Promise<void> {
    // A JSON patch replaces the selector; a merge patch would keep the other one's keys.
    const patch = [{ op: "replace", path: "/spec/template/spec/nodeSelector", value: nodeSelector }];
    await kubectl(["patch", "daemonset", AGENT_DAEMONSET, "-n", this.namespace, "--type", "json", "-p", JSON.stringify(patch)]);
  }
}

function splitImage(image: string): [string, string] {
  const at = image.lastIndexOf(":");
  return [image.slice(0, at), image.slice(at + 1)];
}

/** Whether `signal` is pending for the process (the shared pending set of /proc/PID/status). */
async function signalPending(pid: number, signal: number): Promise<boolean> {
  let status: string;
  try {
    status = await readFile(`/proc/${String(pid)}/status`, "utf8");
  } catch {
    return true; // exited
  }
  const pending = /^ShdPnd:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return pending !== undefined && (BigInt(`0x${pending}`) & (1n << BigInt(signal - 1))) !== 0n;
}

/**
 * One agent per node: a Helm release left installed (`make demo`, or a test that did not get to
 * clean up) would fight the agent under test for the node's devices.
 */
async function refuseBesideHelmRelease(): Promise<void> {
  const status = await runCommand(await helmBinary(), ["status", HELM_RELEASE, "--namespace", HELM_RELEASE_NAMESPACE, "--kubeconfig", (await node()).kubeconfig]);
  if (status.code === 0) {
    throw new Error(`the Helm release ${HELM_RELEASE_NAMESPACE}/${HELM_RELEASE} is installed (make demo?): remove it first (make demo-down, or helm uninstall ${HELM_RELEASE})`);
  }
}

/** The helm that hack/helm/build.sh built (instant when cached; mk/helm.mk). */
async function helmBinary(): Promise<string> {
  const built = await runCommand(join(repo, "hack/helm/build.sh"), []);
  if (built.code !== 0) throw new Error(`hack/helm/build.sh: ${built.stderr}`);
  return built.stdout.trim();
}

export const DRIVER = "netclaim.dev";

/** A veth pair whose two ends stand in for two NICs (a wire between whichever pods get them). */
export async function createNicPair(a: string, b: string): Promise<{ remove(): Promise<void> }> {
  await runCommand("ip", ["link", "delete", a]);
  const made = await runCommand("ip", ["link", "add", a, "type", "veth", "peer", "name", b]);
  if (made.code !== 0) throw new Error(`cannot create stand-in NICs ${a}/${b}: ${made.stderr}`);
  return {
    async remove() {
      await runCommand("ip", ["link", "delete", a]);
    },
  };
}

/**
 * Stand-in NICs for the benches: veths whose far ends wait in a namespace of their own,
 * `wires`, so that a NIC moving into a pod changes no other host link, as a physical NIC or
 * a VF moving changes no other device. (A veth pair's two host ends would: the peer's
 * operstate follows its end, so the peer's slice is written again at every pod start.)
 * The far ends are up, so a NIC up in its pod has a carrier. remove() deletes the
 * namespace, and with it every pair.
 */
export async function createStandInNics(names: readonly string[], wires: string): Promise<{ remove(): Promise<void> }> {
  await runCommand("ip", ["netns", "delete", wires]);
  const added = await runCommand("ip", ["netns", "add", wires]);
  if (added.code !== 0) throw new Error(`cannot create the namespace ${wires} for stand-in NICs: ${added.stderr}`);
  const remove = async (): Promise<void> => {
    await runCommand("ip", ["netns", "delete", wires]);
  };
  try {
    for (const name of names) {
      await runCommand("ip", ["link", "delete", name]);
      const made = await runCommand("ip", ["link", "add", name, "type", "veth", "peer", "name", `${name}w`, "netns", wires]);
      if (made.code !== 0) throw new Error(`cannot create stand-in NIC ${name}: ${made.stderr}`);
      // The far end up, as a switch port is: a NIC set up in its pod then has a carrier, and
      // is not reported (and tainted) as down for as long as the pod runs.
      const up = await runCommand("ip", ["-n", wires, "link", "set", `${name}w`, "up"]);
      if (up.code !== 0) throw new Error(`cannot set the far end of stand-in NIC ${name} up: ${up.stderr}`);
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return { remove };
}

/** A DeviceClass for this driver's devices whose host interface name starts with `prefix`. */
export function deviceClassFor(name: string, prefix: string): Manifest {
  return {
    apiVersion: "resource.k8s.io/v1",
    kind: "DeviceClass",
    metadata: { name },
    spec: { selectors: [{ cel: { expression: `device.driver == "${DRIVER}" && device.attributes["${DRIVER}"].ifName.startsWith("${prefix}")` } }] },
  };
}

/** A template for one device of `deviceClass`, configured by the NetworkConfig body `config`. */
export function claimTemplateFor(name: string, deviceClass: string, config: Record<string, unknown>): Manifest {
  return {
    apiVersion: "resource.k8s.io/v1",
    kind: "ResourceClaimTemplate",
    metadata: { name, namespace: "default" },
    spec: {
      spec: {
        devices: {
          requests: [{ name: "nic", exactly: { deviceClassName: deviceClass } }],
          config: [{ opaque: { driver: DRIVER, parameters: { apiVersion: "netclaim.dev/v1alpha1", kind: "NetworkConfig", ...config } } }],
        },
      },
    },
  };
}

/** Pod fields that claim one device through `template` for its container. */
export function claimFields(template: string): { spec: Record<string, unknown>; container: Record<string, unknown> } {
  return {
    spec: { resourceClaims: [{ name: "nic", resourceClaimTemplateName: template }] },
    container: { resources: { claims: [{ name: "nic" }] } },
  };
}

/**
 * Waits until the node's slice lists `count` devices whose name starts with
 * `prefix`: a pod created earlier would wait for the scheduler's next retry.
 */
export async function waitForPublished(prefix: string, count: number): Promise<void> {
  const env = await node();
  await eventually(`${String(count)} devices named ${prefix}* published`, async () => {
    const { stdout } = await runCommand(env.kubectl, [
      "--kubeconfig", env.kubeconfig, "get", "resourceslices",
      "--field-selector", `spec.nodeName=${env.nodeName},spec.driver=${DRIVER}`,
      "-o", "jsonpath={.items[*].spec.devices[*].name}",
    ]);
    return stdout.split(/\s+/).filter((name) => name.startsWith(prefix)).length >= count;
  }, 60_000);
}

/**
 * One of the agent's HTTP endpoints (docs/metrics.md): the agent's pod uses the host's network,
 * so they are on the node's loopback at the default port. Status 0 when nothing answers.
 */
export async function agentEndpoint(path: string): Promise<{ status: number; body: string }> {
  try {
    const response = await fetch(`http://127.0.0.1:9402${path}`, { signal: AbortSignal.timeout(2_000) });
    return { status: response.status, body: await response.text() };
  } catch (err) {
    return { status: 0, body: String(err) };
  }
}

/** A counter's value in Prometheus text (0 when absent), e.g. counterValue(text, "netclaim_engine_operations_total", 'operation="attach",status="success"'). */
export function counterValue(text: string, name: string, labels: string): number {
  return Number(new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
}
