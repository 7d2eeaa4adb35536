/**
 * The node simulator: real parts around the real agent process.
 *
 *   control plane (hack/cluster, real scheduler) ── the agent (netclaim agent, a child process,
 *   kubelet peer (the kubelet's own plugin code) ──┤   with the RBAC of deploy/)
 *   NRI runtime peer (containerd/nri adaptation) ──┘
 *   kernel: stand-in NICs (veth pairs) on the host, pod network namespaces
 *
 * A test creates API objects, lets the scheduler allocate, then plays the
 * kubelet (prepare) and the runtime (RunPodSandbox after "CNI" gave the pod
 * eth0/net1), and reads the result from the kernel and the API.
 *
 * The control plane and the kubelet peer are this run's release: K8S_DEFAULT
 * in the node suite, K8S_NEWEST in node-newest (K8S_VERSION; mk/node.mk).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { isNotFound } from "../../src/kube/index.ts";
import { agentToken, cluster, createFakeNode, deleteFakeNode, deleteIfExists, kubectlApply, nodeSlices, waitFor, type Cluster } from "../api/harness.ts";
import { KubeletPeer } from "../dra/kubelet-peer.ts";
import { RuntimePeer } from "../nri/runtime-peer.ts";
import { writeSysfsFixture, type PciFunctionSpec } from "../fixtures/sysfs-tree.ts";
import { SIM_NODE_LABEL } from "./objects.ts";

const run = promisify(execFile);
const repo = new URL("../../", import.meta.url).pathname;
export const DRIVER = "netclaim.dev";

export async function sh(command: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(command, args);
  return stdout;
}

export interface LinkInfo {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  operstate?: string;
  addr_info?: { local: string; prefixlen: number; family: string; scope: string }[];
}

/** `ip -json addr` in a namespace (undefined: the host); tests observe with iproute2, never the agent. */
export async function links(netns?: string): Promise<LinkInfo[]> {
  const args = netns === undefined ? ["-json", "addr"] : ["-n", netns, "-json", "addr"];
  return JSON.parse(await sh("ip", ...args)) as LinkInfo[];
}

export async function routes(netns: string | undefined, family: 4 | 6, table = "main"): Promise<{ dst: string; gateway?: string; dev?: string }[]> {
  const base = netns === undefined ? [] : ["-n", netns];
  return JSON.parse(await sh("ip", ...base, "-json", `-${family}`, "route", "show", "table", table)) as { dst: string }[];
}

/** A pod sandbox as the runtime peer describes it to NRI plugins. */
export interface Sandbox {
  id: string;
  uid: string;
  name: string;
  namespace: string;
  netns: string;
  /** The pod's annotations, which the runtime passes on. */
  annotations?: Record<string, string>;
}

export class SimNode {
  readonly name: string;
  readonly dir: string;
  readonly c: Cluster;
  runtime: RuntimePeer;
  readonly kubelet: KubeletPeer;
  readonly kubeletRoot: string;
  readonly nriSocket: string;
  readonly configFile: string;
  agent: ChildProcess | undefined;
  agentLog = "";
  readonly #netns: string[] = [];
  readonly #hostLinks: string[] = [];
  readonly #nics: string[] = [];
  readonly #nicPrefix: string;
  readonly #inventoryRoot: string | undefined;

  private constructor(init: { name: string; dir: string; c: Cluster; runtime: RuntimePeer; kubelet: KubeletPeer; configFile: string; nicPrefix: string; inventoryRoot: string | undefined }) {
    this.#nicPrefix = init.nicPrefix;
    this.#inventoryRoot = init.inventoryRoot;
    this.name = init.name;
    this.dir = init.dir;
    this.c = init.c;
    this.runtime = init.runtime;
    this.kubelet = init.kubelet;
    this.kubeletRoot = join(init.dir, "kubelet");
    this.nriSocket = join(init.dir, "nri.sock");
    this.configFile = init.configFile;
  }

  /** A fake Node in the API, the two peers, and an agent config for stand-in NICs named `<prefix>*`. */
  /**
   * `inventoryRoot` reads devices from a sysfs fixture instead of the host
   * (PCI NICs this VM lacks); such devices can be published and prepared but
   * never moved.
   */
  static async create(name: string, options: { nicPrefix: string; inventoryRoot?: string }): Promise<SimNode> {
    const c = await cluster();
    await deletePodsOn(c, name);
    await createFakeNode(c, name);
    const dir = mkdtempSync("/tmp/nc-sim-");
    const kubeconfig = join(dir, "agent.kubeconfig");
    const admin = JSON.parse(await sh(c.kubectl, "--kubeconfig", c.kubeconfig, "config", "view", "--raw", "-o", "json")) as {
      clusters: { cluster: { server: string; "certificate-authority-data"?: string } }[];
    };
    const server = admin.clusters[0]?.cluster;
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "sim", cluster: server }],
        users: [{ name: "agent", user: { token: await agentToken(c, name) } }],
        contexts: [{ name: "sim", context: { cluster: "sim", user: "agent" } }],
        "current-context": "sim",
      }),
    );
    const configFile = join(dir, "agent.yaml");
    writeFileSync(
      configFile,
      JSON.stringify({
        apiVersion: "netclaim.dev/v1alpha1",
        kind: "AgentConfig",
        nodeName: name,
        kubeconfig,
        stateDir: join(dir, "state"),
        runtimeDir: join(dir, "run"),
        log: { level: "debug" },
        kubelet: { rootDir: join(dir, "kubelet") },
        nri: { socketPath: join(dir, "nri.sock") },
        // The stand-in NICs are veths, which the guard keeps back unless a rule opts in.
        devices: { include: [{ ifName: `${options.nicPrefix}*`, kinds: ["veth"] }] },
        inventory: { resyncSeconds: 5, ...(options.inventoryRoot !== undefined ? { root: options.inventoryRoot } : {}) },
        // The IPAM tests keep host-local's pools in temporary directories.
        cni: { binDirs: ["/usr/lib/cni"], ipam: { allowedPathPrefixes: [tmpdir()] } },
        cdi: { specDir: join(dir, "cdi") },
      }),
    );
    const runtime = await RuntimePeer.start("v0.12", dir, { socketPath: join(dir, "nri.sock") });
    const kubelet = await KubeletPeer.start(join(dir, "kubelet", "plugins_registry"));
    return new SimNode({ name, dir, c, runtime, kubelet, configFile, nicPrefix: options.nicPrefix, inventoryRoot: options.inventoryRoot });
  }

  /**
   * Starts a pod sandbox as a runtime does: RunPodSandbox, then
   * CreateContainer for its first container, which is where netclaim
   * waits for the pod's interfaces.
   */
  async startPod(sandbox: Sandbox): Promise<void> {
    await this.runtime.command("runPod", { pod: sandbox });
    await this.runtime.command("createContainer", { pod: sandbox, container: { id: `${sandbox.id}-app`, name: "app", podId: sandbox.id } });
  }

  /** A runtime restart: the old peer quits, a new one listens on the same socket with an empty state. */
  async restartRuntime(): Promise<void> {
    await this.runtime.stop();
    this.runtime = await RuntimePeer.start("v0.12", this.dir, { socketPath: this.nriSocket });
    // The agent reconnects with backoff; the runtime synchronizes it once registered.
    await this.runtime.nextEvent("sync", 1, 30_000);
  }

  /** Starts `netclaim agent` and waits until the kubelet peer registered it. */
  async startAgent(): Promise<void> {
    this.agentLog = "";
    const syncs = this.runtime.events("sync").length;
    const registrations = this.kubelet.events("registered").length;
    const agent = spawn(process.execPath, [join(repo, "src/cli/main.ts"), "agent", "--config", this.configFile], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env["PATH"] ?? "" },
    });
    agent.stdout.on("data", (chunk: Buffer) => (this.agentLog += chunk.toString("utf8")));
    agent.stderr.on("data", (chunk: Buffer) => (this.agentLog += chunk.toString("utf8")));
    this.agent = agent;
    // A new registration, not the one a killed agent left behind (its socket files stay).
    await this.kubelet.nextEvent("registered", () => true, registrations + 1, 30_000).catch((err: unknown) => {
      throw new Error(`agent did not register; its log:\n${this.agentLog.slice(-3000)}`, { cause: err });
    });
    await this.kubelet.waitForEndpoint(DRIVER, join(this.kubeletRoot, "plugins", DRIVER, "dra.sock"), 30_000);
    await this.runtime.nextEvent("sync", syncs + 1, 30_000);
    // Late attaches and orphan restores run after Synchronize is answered.
    await waitFor("the agent to re-synchronize pod interfaces", () => Promise.resolve(this.agentLog.includes("re-synchronized pod interfaces") ? true : undefined), 30_000);
    // Pods created before the slice lists the devices would wait for the scheduler's next retry.
    await waitFor(`${this.name}'s slice to list ${this.#nics.join(", ")}`, async () => {
      const published = new Set((await nodeSlices(this.c, this.name)).flatMap((slice) => slice.spec.devices?.map((d) => d.name) ?? []));
      return this.#nics.every((nic) => published.has(nic)) ? true : undefined;
    }, 30_000);
  }

  /** kill -9, as a crash. */
  async killAgent(): Promise<void> {
    const agent = this.agent;
    if (agent === undefined || agent.exitCode !== null) return;
    const exited = new Promise((resolve) => agent.once("exit", resolve));
    agent.kill("SIGKILL");
    await exited;
    this.agent = undefined;
  }

  /** SIGTERM, as a DaemonSet pod stop; returns once the kubelet peer has deregistered it. */
  async stopAgent(): Promise<void> {
    const agent = this.agent;
    if (agent === undefined || agent.exitCode !== null) return;
    const exited = new Promise((resolve) => agent.once("exit", resolve));
    agent.kill("SIGTERM");
    await exited;
    this.agent = undefined;
    await waitFor("the kubelet peer to deregister the agent", async () =>
      (await this.kubelet.plugin(DRIVER).then(() => false, () => true)) ? true : undefined,
    );
  }

  /**
   * A veth pair whose end `name` stands in for a NIC; the other end, `x<name>`,
   * stays on the host (outside the published name prefix).
   */
  async addNic(name: string): Promise<void> {
    await sh("ip", "link", "add", name, "type", "veth", "peer", "name", `x${name}`);
    await sh("ip", "link", "set", `x${name}`, "up");
    this.#hostLinks.push(name, `x${name}`);
    if (name.startsWith(this.#nicPrefix)) this.#nics.push(name);
  }

  /**
   * Writes the sysfs fixture at `inventoryRoot`: the PCI functions `pci`, and
   * the stand-in NICs as the kernel shows them now, so that one inventory
   * lists devices the agent can move and devices this VM lacks. Call it after
   * the last addNic and before startAgent.
   */
  async writeInventoryFixture(pci: PciFunctionSpec[]): Promise<void> {
    if (this.#inventoryRoot === undefined) throw new Error(`${this.name} reads the host's sysfs: create it with inventoryRoot`);
    const kernel = await links();
    const virtual = this.#nics.map((name) => {
      const link = kernel.find((l) => l.ifname === name);
      if (link === undefined) throw new Error(`stand-in NIC ${name} is not on the host`);
      return { name, ifindex: link.ifindex, mtu: link.mtu, kind: "veth", ...(link.address !== undefined ? { mac: link.address } : {}) };
    });
    await writeSysfsFixture(this.#inventoryRoot, { pci, virtual });
  }

  /** A pod network namespace as CNI leaves it: loopback, and Multus's net1 (a macvlan over `master`). */
  async podNetns(master: string, net1Address: string): Promise<string> {
    const netns = `ncsim-${randomUUID().slice(0, 8)}`;
    await sh("ip", "netns", "add", netns);
    this.#netns.push(netns);
    await sh("ip", "-n", netns, "link", "set", "lo", "up");
    await execCni("macvlan", "ADD", { netns: `/var/run/netns/${netns}`, ifName: "net1", containerId: netns }, {
      cniVersion: "1.0.0",
      name: "multus-net",
      type: "macvlan",
      master,
      mode: "bridge",
      ipam: { type: "static", addresses: [{ address: net1Address }] },
    });
    return netns;
  }

  async removeNetns(netns: string): Promise<void> {
    await sh("ip", "netns", "delete", netns).catch(() => undefined);
    const at = this.#netns.indexOf(netns);
    if (at >= 0) this.#netns.splice(at, 1);
  }

  async apply(yaml: string): Promise<void> {
    await kubectlApply(this.c, yaml);
  }

  async deletePod(namespace: string, name: string): Promise<void> {
    await deletePod(this.c, namespace, name);
  }

  async cleanup(): Promise<void> {
    await deletePodsOn(this.c, this.name).catch(() => undefined);
    await this.stopAgent().catch(() => undefined);
    await this.runtime.stop().catch(() => undefined);
    await this.kubelet.stop().catch(() => undefined);
    for (const netns of this.#netns) await sh("ip", "netns", "delete", netns).catch(() => undefined);
    for (const link of this.#hostLinks) await sh("ip", "link", "delete", link).catch(() => undefined);
    // A stopped agent unmounts its IPAM namespace; a killed one leaves it mounted.
    await sh("umount", join(this.dir, "run", "ipam", "netns")).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
    // The fake Node, the agent-token pod bound to it and its slices; the agent is stopped, so
    // nothing publishes them again. If this fails, the api harness's after hook tries again.
    await deleteFakeNode(this.c, this.name).catch(() => undefined);
  }
}

async function execCni(type: string, command: string, env: { netns: string; ifName: string; containerId: string }, config: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      `/usr/lib/cni/${type}`,
      [],
      {
        env: { CNI_COMMAND: command, CNI_NETNS: env.netns, CNI_IFNAME: env.ifName, CNI_CONTAINERID: env.containerId, CNI_PATH: "/usr/lib/cni" },
      },
      (err, stdout) => {
        if (err) reject(new Error(`CNI ${type} ${command}: ${stdout}`, { cause: err }));
        else resolve(stdout);
      },
    );
    child.stdin?.end(JSON.stringify(config));
  });
}

/** Force-deletes a pod (no kubelet runs to finish it) and waits until it and its generated claims are gone. */
async function deletePod(c: Cluster, namespace: string, name: string): Promise<void> {
  const path = `/api/v1/namespaces/${namespace}/pods/${name}`;
  let uid: string;
  try {
    uid = (await c.admin.request<{ metadata: { uid: string } }>("GET", path)).metadata.uid;
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  await deleteIfExists(c, `${path}?gracePeriodSeconds=0`);
  await waitFor(`pod ${namespace}/${name} and its claims to be deleted`, async () => {
    const claims = await c.admin.request<{ items: { metadata: { ownerReferences?: { uid: string }[] } }[] }>(
      "GET",
      `/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaims`,
    );
    const owned = claims.items.some((claim) => claim.metadata.ownerReferences?.some((o) => o.uid === uid) === true);
    return owned ? undefined : true;
  }, 60_000);
}

/**
 * Pods an earlier (failed) run left for the node would hold its devices, or
 * take them as soon as they are free: bound ones and still pending ones.
 */
async function deletePodsOn(c: Cluster, nodeName: string): Promise<void> {
  const pods = await c.admin.request<{ items: { metadata: { namespace: string; name: string } }[] }>("GET", "/api/v1/pods", {
    query: { labelSelector: `${SIM_NODE_LABEL}=${nodeName}` },
  });
  for (const p of pods.items) await deletePod(c, p.metadata.namespace, p.metadata.name);
}
