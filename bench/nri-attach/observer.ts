/**
 * The bench's stopwatch inside the runtime: test/peers/nri-observer, an NRI
 * plugin registered before netclaim. It reports, per annotated pod, when its
 * interface was configured and when its first container was created, both in
 * milliseconds after its RunPodSandbox reached the runtime's plugins.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { execFile } from "node:child_process";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { z } from "zod";

const repo = new URL("../../", import.meta.url).pathname;

export const WATCH_ANNOTATION = "bench.netclaim.dev/watch";
export const BARE_MOVE_ANNOTATION = "bench.netclaim.dev/bare-move";

const recordSchema = z.object({
  pod: z.string().optional(),
  event: z.enum(["synchronized", "configured", "create_container", "bare_move", "bare_return"]),
  ms: z.number().optional(),
  error: z.string().optional(),
});
type ObserverEvent = z.infer<typeof recordSchema>["event"];

/** What the observer measured of one pod. */
export interface PodTimes {
  /** RunPodSandbox → the interface up with its address and MTU in the pod. */
  configured: number;
  /** RunPodSandbox → the pod's first CreateContainer. */
  createContainer: number;
}

export class Observer {
  readonly #child: ChildProcess;
  readonly #seen = new Map<string, number>();
  readonly #waiters = new Map<string, (ms: number) => void>();
  readonly #errors: string[] = [];

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  static async start(nriSocket: string): Promise<Observer> {
    const { stdout: built } = await promisify(execFile)(`${repo}hack/build-go.sh`, ["test/peers/nri-observer", ".", "nri-observer"], { cwd: repo });
    const child = spawn(built.trim(), ["-socket", nriSocket], { stdio: ["ignore", "pipe", "inherit"] });
    const observer = new Observer(child);
    const synchronized = new Promise<void>((resolve, reject) => {
      observer.#waiters.set(":synchronized", () => {
        resolve();
      });
      child.once("exit", (code) => {
        reject(new Error(`nri-observer exited with ${String(code)} before the runtime synchronized it`));
      });
    });
    // stdio "pipe" above: there is a stdout.
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      observer.#record(line);
    });
    await synchronized;
    return observer;
  }

  #record(line: string): void {
    const record = recordSchema.parse(JSON.parse(line));
    const key = `${record.pod ?? ""}:${record.event}`;
    if (record.error !== undefined) {
      this.#errors.push(`${key}: ${record.error}`);
      return;
    }
    const ms = record.ms ?? 0;
    this.#seen.set(key, ms);
    this.#waiters.get(key)?.(ms);
    this.#waiters.delete(key);
  }

  #when(pod: string, event: ObserverEvent, timeoutMs: number): Promise<number> {
    const key = `${pod}:${event}`;
    const seen = this.#seen.get(key);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`the observer saw no ${event} of pod ${pod} in ${String(timeoutMs)} ms; its errors: ${this.#errors.join("; ") || "none"}`));
      }, timeoutMs);
      this.#waiters.set(key, (ms) => {
        clearTimeout(timer);
        resolve(ms);
      });
    });
  }

  /** The pod's times, once both were seen (call once its container started). */
  async times(pod: string, timeoutMs = 10_000): Promise<PodTimes> {
    const [configured, createContainer] = await Promise.all([this.#when(pod, "configured", timeoutMs), this.#when(pod, "create_container", timeoutMs)]);
    return { configured, createContainer };
  }

  /** Errors the observer reported (a bare move that failed, an interface never configured). */
  errors(): readonly string[] {
    return this.#errors;
  }

  stop(): void {
    this.#child.kill();
  }
}
