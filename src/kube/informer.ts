/**
 * A supervised list-watch cache for one filtered collection.
 *
 * It lists, then watches from the list's resourceVersion with bookmarks, and
 * reconnects when the server ends the watch (normal, every `timeoutSeconds`).
 * Unlike @kubernetes/client-node's informer, which stops for good on any
 * error other than 410, every failure (refused connection, 5xx, 403 while
 * RBAC propagates, a malformed event) restarts the cycle from a fresh list
 * after a jittered exponential backoff, for as long as the informer runs.
 * A watch that delivers nothing for `idleTimeoutMs` (no events, no bookmarks)
 * is presumed dead and restarted too.
 *
 * Field and label selectors keep a node agent's view to its own objects.
 */
import type { KubeClient, WatchStream } from "./client.ts";
import { KubeApiError } from "./errors.ts";
import { isKubeObject, type KubeObject, type ObjectList } from "./types.ts";

export interface InformerOptions {
  /** Collection path, e.g. /apis/resource.k8s.io/v1/resourceslices. */
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** Server-side watch duration; each reconnect is one request. */
  timeoutSeconds?: number;
  idleTimeoutMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  /** Called after any change to the cache (list, event), with the whole cache. */
  onChange: () => void;
  /** Called with each failure before the backoff; the informer keeps going. */
  onError?: (err: unknown) => void;
  random?: () => number;
}

export class Informer<T extends KubeObject> {
  readonly #client: KubeClient;
  readonly #options: InformerOptions;
  readonly #cache = new Map<string, T>();
  #controller = new AbortController();
  #stream: WatchStream | undefined;
  #loop: Promise<void> | undefined;
  #synced = false;
  #syncWaiters: (() => void)[] = [];
  #restarts = 0;

  constructor(client: KubeClient, options: InformerOptions) {
    this.#client = client;
    this.#options = options;
  }

  start(): void {
    if (this.#loop !== undefined) return;
    this.#controller = new AbortController();
    this.#loop = this.#run(this.#controller.signal);
  }

  async stop(): Promise<void> {
    this.#controller.abort();
    this.#stream?.close();
    await this.#loop;
    this.#loop = undefined;
  }

  /** Resolves after the first successful list. */
  async synced(): Promise<void> {
    if (this.#synced) return;
    await new Promise<void>((resolve) => this.#syncWaiters.push(resolve));
  }

  /** Current objects by name. */
  list(): T[] {
    return [...this.#cache.values()];
  }

  get(name: string): T | undefined {
    return this.#cache.get(name);
  }

  /** Records an object the caller just wrote, so a reconcile before its watch event sees it. */
  observe(object: T): void {
    const name = object.metadata.name;
    if (name !== undefined) this.#cache.set(name, object);
  }

  /** Records a deletion the caller just made. */
  forget(name: string): void {
    this.#cache.delete(name);
  }

  /** How many times the cycle restarted after a failure. */
  get restarts(): number {
    return this.#restarts;
  }

  async #run(signal: AbortSignal): Promise<void> {
    const { initialMs, maxMs } = this.#options.backoff ?? { initialMs: 200, maxMs: 30_000 };
    const random = this.#options.random ?? Math.random;
    let delay = initialMs;
    // A function, not the property: the signal flips while this loop awaits.
    const aborted = (): boolean => signal.aborted;
    while (!aborted()) {
      try {
        let resourceVersion = await this.#list();
        delay = initialMs;
        while (!aborted()) resourceVersion = await this.#watch(resourceVersion, signal);
        return;
      } catch (err) {
        if (aborted()) return;
        this.#restarts++;
        this.#options.onError?.(err);
        // Full jitter in [delay/2, delay): agents of many nodes must not retry in step.
        const wait = delay / 2 + (random() * delay) / 2;
        delay = Math.min(delay * 2, maxMs);
        await sleep(wait, signal);
      }
    }
  }

  async #list(): Promise<string> {
    const list = await this.#client.request<ObjectList<unknown>>("GET", this.#options.path, {
      query: { fieldSelector: this.#options.fieldSelector, labelSelector: this.#options.labelSelector },
    });
    this.#cache.clear();
    for (const item of list.items) this.#put(item);
    if (!this.#synced) {
      this.#synced = true;
      for (const resolve of this.#syncWaiters.splice(0)) resolve();
    }
    this.#options.onChange();
    return list.metadata.resourceVersion ?? "";
  }

  /** Follows one watch until the server ends it; returns the last resourceVersion seen. */
  async #watch(resourceVersion: string, signal: AbortSignal): Promise<string> {
    const stream = await this.#client.watch(
      this.#options.path,
      {
        resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: this.#options.timeoutSeconds ?? 1800,
        fieldSelector: this.#options.fieldSelector,
        labelSelector: this.#options.labelSelector,
      },
      signal,
    );
    this.#stream = stream;
    const idleMs = this.#options.idleTimeoutMs ?? 180_000;
    let idle = setTimeout(() => {
      stream.close();
    }, idleMs);
    let last = resourceVersion;
    try {
      for await (const raw of stream.events()) {
        clearTimeout(idle);
        idle = setTimeout(() => {
          stream.close();
        }, idleMs);
        last = this.#apply(raw) ?? last;
      }
    } catch (err) {
      if (signal.aborted) return last;
      throw err;
    } finally {
      clearTimeout(idle);
      this.#stream = undefined;
      stream.close();
    }
    return last;
  }

  /** Applies one watch event; returns its resourceVersion. */
  #apply(raw: unknown): string | undefined {
    const event = raw as { type?: unknown; object?: unknown };
    if (event.type === "ERROR") {
      const status = event.object as { code?: number; reason?: string; message?: string } | undefined;
      // 410 Gone: our resourceVersion is too old; the caller relists.
      throw new KubeApiError("KUBE_API", {
        method: "WATCH",
        path: this.#options.path,
        status: status?.code ?? 0,
        reason: status?.reason ?? "",
        message: status?.message ?? "watch error",
      });
    }
    if (!isKubeObject(event.object)) {
      throw new KubeApiError("KUBE_DECODE", { method: "WATCH", path: this.#options.path, status: 0, reason: "", message: `malformed watch event: ${JSON.stringify(raw).slice(0, 200)}` });
    }
    const object = event.object as T;
    const rv = object.metadata.resourceVersion;
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
        // The event of a write the caller made and observed: the cache holds it already, and a
        // caller that plans from every change (the slice publisher) would plan again for nothing.
        if (rv !== undefined && object.metadata.name !== undefined && this.#cache.get(object.metadata.name)?.metadata.resourceVersion === rv) break;
        this.#put(object);
        this.#options.onChange();
        break;
      case "DELETED":
        if (object.metadata.name !== undefined) this.#cache.delete(object.metadata.name);
        this.#options.onChange();
        break;
      case "BOOKMARK":
        break;
      default:
        throw new KubeApiError("KUBE_DECODE", { method: "WATCH", path: this.#options.path, status: 0, reason: "", message: `unknown watch event type ${String(event.type)}` });
    }
    return rv;
  }

  #put(item: unknown): void {
    if (!isKubeObject(item) || item.metadata.name === undefined) return;
    this.#cache.set(item.metadata.name, item as T);
  }
}

async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
