/**
 * Drives the Go kubelet peer (test/peers/kubelet: the kubelet's own plugin
 * manager and DRA plugin manager) over stdio: JSON commands in, JSON results
 * and events out.
 *
 * The peer is the kubelet of this run's release (K8S_VERSION, by default
 * K8S_DEFAULT; test/fixtures/k8s-versions.ts): test/peers/kubelet/<version>/
 * pins k8s.io/kubernetes at that release, so the dra and node suites test
 * against the 1.34 kubelet and, as dra-newest and node-newest, the newest.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { k8sVersions } from "../fixtures/k8s-versions.ts";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

/** The peer for `version` (default: this run's), built by hack/build-go.sh on first use and cached. */
export function kubeletPeerBinary(version = k8sVersions().current): string {
  return execFileSync("hack/build-go.sh", [`test/peers/kubelet/${version}`, ".", `kubelet-peer-${version}`], {
    cwd: repoRoot,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

export interface WireClaim {
  namespace: string;
  uid: string;
  name: string;
}

/** A device as the kubelet's Go types marshal it (empty fields omitted). */
export interface PeerDevice {
  request_names?: string[];
  pool_name: string;
  device_name: string;
  cdi_device_ids?: string[];
}

export interface PrepareResult {
  endpoint: string;
  service: string;
  response: { claims?: Record<string, { devices?: PeerDevice[]; error?: string } | null> };
}

export interface UnprepareResult {
  endpoint: string;
  service: string;
  response: { claims?: Record<string, { error?: string } | null> };
}

export interface PeerEvent {
  event: string;
  [key: string]: unknown;
}

interface Reply {
  id: number;
  error?: string;
  [key: string]: unknown;
}

export class KubeletPeer {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #pending = new Map<number, (reply: Reply) => void>();
  readonly #events: PeerEvent[] = [];
  readonly #waiters = new Set<() => void>();
  readonly #exited: Promise<void>;
  #nextId = 1;
  stderr = "";

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    child.stderr.on("data", (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-20_000);
    });
    this.#exited = new Promise((resolve) => child.once("exit", () => {
      resolve();
    }));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const message = JSON.parse(line) as Partial<Reply> & Partial<PeerEvent>;
      if (typeof message.event === "string") {
        this.#events.push(message as PeerEvent);
        for (const wake of [...this.#waiters]) wake();
      } else {
        const id = message.id ?? 0;
        this.#pending.get(id)?.(message as Reply);
        this.#pending.delete(id);
      }
    });
  }

  /**
   * Starts the peer watching `registryDir` (the kubelet's plugins_registry).
   * With `api`, its DRA plugin manager wipes ResourceSlices as the kubelet's
   * does: all of the node's at start, and a driver's once it has been gone
   * for `wipingDelayMs` (the kubelet's 30 s by default).
   */
  static async start(registryDir: string, options: { health?: boolean; api?: { kubeconfig: string; nodeName: string; wipingDelayMs?: number } } = {}): Promise<KubeletPeer> {
    const args = ["-registry-dir", registryDir, `-health=${options.health ?? true}`, "-v", "4"];
    if (options.api !== undefined) {
      args.push("-kubeconfig", options.api.kubeconfig, "-node-name", options.api.nodeName);
      if (options.api.wipingDelayMs !== undefined) args.push("-wiping-delay", `${options.api.wipingDelayMs}ms`);
    }
    const peer = new KubeletPeer(spawn(kubeletPeerBinary(), args, { stdio: ["pipe", "pipe", "pipe"] }));
    await peer.nextEvent("ready");
    return peer;
  }

  async prepare(driver: string, claims: WireClaim[]): Promise<PrepareResult> {
    return (await this.#command("prepare", { driver, claims })) as unknown as PrepareResult;
  }

  async unprepare(driver: string, claims: WireClaim[]): Promise<UnprepareResult> {
    return (await this.#command("unprepare", { driver, claims })) as unknown as UnprepareResult;
  }

  /** The endpoint and service the kubelet would call for `driver` now. */
  async plugin(driver: string): Promise<{ endpoint: string; service: string }> {
    return (await this.#command("plugin", { driver })) as unknown as { endpoint: string; service: string };
  }

  /** Waits until the kubelet would call `endpoint` for `driver` (it prefers the newest connected plugin). */
  async waitForEndpoint(driver: string, endpoint: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const current = await this.plugin(driver).catch((err: unknown) => ({ endpoint: String(err) }));
      if (current.endpoint === endpoint) return;
      if (Date.now() > deadline) throw new Error(`kubelet peer still calls ${current.endpoint}, not ${endpoint}, after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async #command(op: string, args: Record<string, unknown>): Promise<Reply> {
    const id = this.#nextId++;
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, resolve);
      this.#child.stdin.write(JSON.stringify({ id, op, ...args }) + "\n", (err) => {
        if (err) reject(err);
      });
    });
    if (reply.error !== undefined) throw new Error(`kubelet peer ${op}: ${reply.error}`);
    return reply;
  }

  events(name: string, match: (e: PeerEvent) => boolean = () => true): PeerEvent[] {
    return this.#events.filter((e) => e.event === name && match(e));
  }

  /** Waits for the `count`-th event named `name` that satisfies `match`. */
  async nextEvent(name: string, match: (e: PeerEvent) => boolean = () => true, count = 1, timeoutMs = 20_000): Promise<PeerEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = this.events(name, match);
      if (seen.length >= count) return seen[count - 1]!;
      if (Date.now() > deadline) throw new Error(`kubelet peer: no ${name} event #${count} within ${timeoutMs} ms; stderr:\n${this.stderr.slice(-3000)}`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.#waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, 100);
        this.#waiters.add(wake);
      });
    }
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill("SIGTERM");
    await this.#exited;
  }
}
