/**
 * Drives the Go NRI runtime peer (test/peers/nri-runtime, built on
 * containerd/nri pkg/adaptation) over stdio: JSON commands in, one JSON reply
 * per command and JSON event lines out.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Every NRI a supported runtime embeds: v0.8 (containerd 2.0, 2.1), v0.10 (CRI-O 1.34), v0.11
 * (CRI-O 1.35, 1.36, containerd 2.2) and v0.12 (containerd 2.3). Before v0.12 pod events come
 * as StateChange; v0.12 has the dedicated methods.
 */
export const NRI_VERSIONS = ["v0.8", "v0.10", "v0.11", "v0.12"] as const;
export type NriPeerVersion = (typeof NRI_VERSIONS)[number];

/** Builds (or finds in the cache) a Go peer and returns its path. */
export function goPeer(moduleDir: string, name: string): string {
  return execFileSync("hack/build-go.sh", [moduleDir, ".", name], { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
}

export function runtimePeerBinary(version: NriPeerVersion): string {
  return goPeer(`test/peers/nri-runtime/${version}`, `nri-runtime-${version}`);
}

export interface PodSpec {
  id: string;
  uid: string;
  name: string;
  namespace: string;
  netns?: string;
  ips?: string[];
  annotations?: Record<string, string>;
}

export interface PeerEvent {
  event: string;
  [key: string]: unknown;
}

interface Reply {
  id: number;
  ok: boolean;
  error?: string;
  result?: unknown;
}

export interface RuntimePeerOptions {
  requestTimeoutMs?: number;
  registrationTimeoutMs?: number;
  pluginPath?: string;
  /** Reuse a socket path (a "restarted" runtime). */
  socketPath?: string;
}

/** A short temporary directory for sockets (unix paths are limited to ~108 bytes). */
export function shortTempDir(): string {
  return mkdtempSync("/tmp/nc-nri-");
}

export class RuntimePeer {
  readonly socketPath: string;
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #pending = new Map<number, (reply: Reply) => void>();
  readonly #events: PeerEvent[] = [];
  readonly #eventWaiters = new Set<() => void>();
  readonly #exited: Promise<void>;
  #nextId = 1;
  stderr = "";

  private constructor(child: ChildProcessWithoutNullStreams, socketPath: string) {
    this.#child = child;
    this.socketPath = socketPath;
    child.stderr.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    this.#exited = new Promise((resolve) => child.once("exit", () => {
      resolve();
    }));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const message = JSON.parse(line) as Reply | PeerEvent;
      if ("event" in message) {
        this.#events.push(message);
        for (const wake of [...this.#eventWaiters]) wake();
      } else {
        this.#pending.get(message.id)?.(message);
        this.#pending.delete(message.id);
      }
    });
  }

  static async start(version: NriPeerVersion, dir: string, options: RuntimePeerOptions = {}): Promise<RuntimePeer> {
    const socketPath = options.socketPath ?? `${dir}/nri.sock`;
    const args = [
      "-socket", socketPath,
      "-request-timeout", `${options.requestTimeoutMs ?? 2000}ms`,
      "-registration-timeout", `${options.registrationTimeoutMs ?? 5000}ms`,
    ];
    if (options.pluginPath !== undefined) args.push("-plugin-path", options.pluginPath);
    const child = spawn(runtimePeerBinary(version), args, { stdio: ["pipe", "pipe", "pipe"] });
    const peer = new RuntimePeer(child, socketPath);
    await peer.nextEvent("ready");
    return peer;
  }

  /** Sends a command; resolves with its result, rejects with the runtime's error. */
  async command(op: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#nextId++;
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, resolve);
      this.#child.stdin.write(JSON.stringify({ id, op, ...args }) + "\n", (err) => {
        if (err) reject(err);
      });
    });
    if (!reply.ok) throw new Error(`runtime peer ${op}: ${reply.error ?? "failed"}`);
    return reply.result;
  }

  /** Every event seen so far with this name. */
  events(name: string): PeerEvent[] {
    return this.#events.filter((e) => e.event === name);
  }

  /** Waits for the `count`-th event with this name (1-based, counting all seen). */
  async nextEvent(name: string, count = 1, timeoutMs = 20_000): Promise<PeerEvent> {
    const deadline = AbortSignal.timeout(timeoutMs);
    for (;;) {
      const seen = this.events(name);
      if (seen.length >= count) return seen[count - 1]!;
      if (deadline.aborted) throw new Error(`runtime peer: no ${name} event #${count} within ${timeoutMs} ms; stderr:\n${this.stderr.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.#eventWaiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, 100);
        this.#eventWaiters.add(wake);
      });
    }
  }

  /** Stops the runtime the way a restart does: the process ends, its sockets close. */
  async kill(): Promise<void> {
    this.#child.kill("SIGKILL");
    await this.#exited;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.stdin.end(JSON.stringify({ id: 0, op: "quit" }) + "\n");
    await this.#exited;
  }
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
