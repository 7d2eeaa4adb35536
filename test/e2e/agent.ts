/**
 * The netclaim agent on the real node, run as a host process the way the
 * DaemonSet runs it (same command, same configuration shape), against the
 * node's kubelet and containerd.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { eventually, node, runCommand, type Manifest } from "./harness.ts";

const repo = new URL("../../", import.meta.url).pathname;

export interface AgentOptions {
  /** Host interfaces to publish, as an ifName glob. */
  nicGlob: string;
  /** Directories with CNI IPAM plugins. */
  cniBinDirs?: readonly string[];
}

export class E2eAgent {
  readonly dir: string;
  readonly #options: AgentOptions;
  #child: ChildProcessWithoutNullStreams | undefined;
  log = "";

  private constructor(dir: string, options: AgentOptions) {
    this.dir = dir;
    this.#options = options;
  }

  static async start(options: AgentOptions): Promise<E2eAgent> {
    const agent = new E2eAgent(await mkdtemp("/tmp/nc-e2e-agent-"), options);
    await agent.start();
    return agent;
  }

  /** Starts (or restarts) the agent and waits until it serves the kubelet and the runtime. */
  async start(): Promise<void> {
    const env = await node();
    const config = join(this.dir, "agent.yaml");
    await writeFile(
      config,
      JSON.stringify({
        apiVersion: "netclaim.dev/v1alpha1",
        kind: "AgentConfig",
        nodeName: env.nodeName,
        kubeconfig: env.kubeconfig,
        stateDir: join(this.dir, "state"),
        runtimeDir: this.runtimeDir,
        kubelet: { rootDir: env.kubeletDir },
        nri: { socketPath: env.nriSocket },
        // The stand-in NICs are veths, which the guard keeps back unless a rule opts in.
        devices: { include: [{ ifName: this.#options.nicGlob, kinds: ["veth"] }] },
        cni: { binDirs: this.#options.cniBinDirs ?? ["/usr/lib/cni"], ipam: { allowedPathPrefixes: [env.ipamDir] } },
        cdi: { specDir: env.cdiDir },
      }),
    );
    this.log = "";
    const child = spawn(process.execPath, [join(repo, "src/cli/main.ts"), "agent", "--config", config], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { PATH: process.env["PATH"] ?? "" },
    });
    child.stdout.on("data", (chunk: Buffer) => (this.log += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (this.log += chunk.toString("utf8")));
    this.#child = child;
    const deadline = Date.now() + 30_000;
    while (!(this.log.includes('"state":"connected"') && this.log.includes("netclaim agent started"))) {
      if (child.exitCode !== null) throw new Error(`the agent exited (${child.exitCode}):\n${this.log.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`the agent did not start within 30 s:\n${this.log.slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Waits until the kubelet has registered this run of the agent (its plugin watcher saw the socket). */
  async registered(timeoutMs = 30_000): Promise<void> {
    await eventually("the kubelet to register the agent", () => Promise.resolve(this.log.includes("registered with the kubelet")), timeoutMs);
  }

  /** SIGSTOP: the agent stays registered with the runtime but answers nothing (stop() with SIGKILL ends it). */
  pause(): void {
    this.#child?.kill("SIGSTOP");
  }

  /** SIGTERM (the DaemonSet pod stopping), or SIGKILL (a crash). */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    // A paused agent handles SIGTERM only once it runs again (SIGKILL needs no help).
    child.kill("SIGCONT");
    await exited;
    this.#child = undefined;
  }

  /** On a tmpfs, as /run is on a node (the journal's speed depends on it). */
  get runtimeDir(): string {
    return join("/dev/shm", basename(this.dir));
  }

  async remove(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
    // A stopped agent unmounts its IPAM namespace; one killed and not restarted leaves it mounted.
    await new Promise((resolve) => execFile("umount", [join(this.runtimeDir, "ipam", "netns")], resolve));
    await rm(this.runtimeDir, { recursive: true, force: true });
  }
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
 * One of the agent's HTTP endpoints (docs/metrics.md): the agent uses the host's network, as a
 * host process or as the DaemonSet's pod, so they are on the node's loopback at the default port.
 * Status 0 when nothing answers.
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
