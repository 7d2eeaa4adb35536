/**
 * Watches a labelled set of pods and reports when each one first shows
 * Ready=True, timed on arrival of the watch event (performance.now()).
 */
import { z } from "zod";
import type { KubeClient, WatchStream } from "../../src/kube/index.ts";

const podEventSchema = z.object({
  type: z.string(),
  object: z.object({
    metadata: z.object({ name: z.string().optional() }).optional(),
    status: z.object({ conditions: z.array(z.object({ type: z.string(), status: z.string() })).optional() }).optional(),
  }),
});

interface Waiter {
  resolve(at: number): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class ReadyWatch {
  readonly #stream: WatchStream;
  readonly #readyAt = new Map<string, number>();
  readonly #waiters = new Map<string, Waiter>();
  #failure: Error | undefined;

  private constructor(stream: WatchStream) {
    this.#stream = stream;
  }

  static async open(client: KubeClient, namespace: string, labelSelector: string): Promise<ReadyWatch> {
    const stream = await client.watch(`/api/v1/namespaces/${namespace}/pods`, { labelSelector, timeoutSeconds: 3600 });
    const watch = new ReadyWatch(stream);
    watch.#consume().catch((error: unknown) => {
      watch.#fail(new Error("pod watch failed", { cause: error }));
    });
    return watch;
  }

  /** Resolves with the time the pod was first seen Ready; rejects after `timeoutMs`. */
  whenReady(name: string, timeoutMs: number): Promise<number> {
    const seen = this.#readyAt.get(name);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(name);
        reject(new Error(`pod ${name} not Ready within ${String(timeoutMs)} ms`));
      }, timeoutMs);
      this.#waiters.set(name, { resolve, reject, timer });
    });
  }

  close(): void {
    this.#stream.close();
  }

  async #consume(): Promise<void> {
    for await (const raw of this.#stream.events()) {
      const at = performance.now();
      const event = podEventSchema.parse(raw);
      const name = event.object.metadata?.name;
      if (event.type === "ERROR" || name === undefined) continue;
      const ready = event.object.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
      if (!ready || this.#readyAt.has(name)) continue;
      this.#readyAt.set(name, at);
      const waiter = this.#waiters.get(name);
      if (waiter !== undefined) {
        clearTimeout(waiter.timer);
        this.#waiters.delete(name);
        waiter.resolve(at);
      }
    }
    this.#fail(new Error("pod watch ended"));
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const waiter of this.#waiters.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.#waiters.clear();
  }
}
