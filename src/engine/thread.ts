/**
 * The attach engine on a thread of its own: the agent's way to run it.
 * Each call is one message to the engine's thread (worker.ts); the engine
 * there checks, journals, moves and configures without coming back in
 * between, so an attach costs the agent's event loop one message wake-up
 * (begin: two), as a bare netlink move on the netlink thread would, and no
 * work of its own. The same thread runs the agent's other netlink batches
 * (it is a BatchRunner), so the agent needs no second netlink thread: each
 * one is a V8 isolate of its own, about 30 MB. If the thread dies, calls in flight
 * fail with ENGINE_THREAD and the next call starts a fresh thread; the
 * journal lets it carry on.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { HeapInfo } from "node:v8";
import { onWorkerStop } from "../common/worker-exit.ts";
import { batchIn, type BatchRunner, type Link, type Op, type PlacedOp, type Results } from "../netlink/index.ts";
import type { Durability } from "../store/index.ts";
import type { Attacher, AttachResult, DetachOptions, DetachOutcome, PodLinkSource, RecoveryResult } from "./attacher.ts";
import { EngineError } from "./errors.ts";
import type { AttachmentPlanInput } from "./plan.ts";
import { errorFromWire, type BatchOpTimes, type EngineCall, type EngineReply, type EngineRequest, type EngineThreadData } from "./thread-protocol.ts";

// Built code runs worker.js, source runs worker.ts: follow this file's extension.
const WORKER_URL = new URL(`./worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export interface EngineThreadOptions {
  /** The journal's directory: the agent's runtimeDir. */
  dir: string;
  /** Defaults to "restart": which device sits in which pod is a fact of this boot. */
  durability?: Durability;
  /**
   * Keep every batch's operation times on the engine's thread (benchmarks)
   * until takeOpTimes() asks for them. They do not ride on the answers:
   * carrying them would make every measured call slower than it is.
   */
  recordOpTimes?: boolean;
  /**
   * The nice value of the engine's thread (-20 to 19); absent, it keeps the
   * process's. See docs/engine.md: the agent raises it, so that the runtime's
   * own work on a starting pod does not stretch that pod's attach.
   */
  nice?: number;
}

interface Pending {
  worker: Worker;
  request: EngineCall;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  begun?: () => void;
}

export class EngineThread implements Attacher, BatchRunner, PodLinkSource {
  readonly #options: EngineThreadOptions;
  #worker: Worker | undefined;
  #ready: Promise<void> | undefined;
  #nextId = 1;
  #niceErrno: number | undefined;
  readonly #pending = new Map<number, Pending>();

  constructor(options: EngineThreadOptions) {
    this.#options = options;
  }

  /** The errno with which the kernel refused the thread's nice value (options.nice), once started. */
  get niceRefused(): number | undefined {
    return this.#niceErrno;
  }

  /** Starts the thread and waits until it has opened the journal (a failure to open it is thrown here). */
  async start(): Promise<void> {
    this.#ensureWorker();
    await this.#ready;
  }

  async begin(inputs: readonly AttachmentPlanInput[], options: { podLinks?: readonly Link[] } = {}): Promise<{ done: Promise<AttachResult[]> }> {
    let begun: () => void = () => undefined;
    const checked = new Promise<void>((resolve) => {
      begun = resolve;
    });
    const request: EngineCall = { call: "begin", inputs, ...(options.podLinks !== undefined && { podLinks: options.podLinks }) };
    const done = this.#call(request, begun) as Promise<AttachResult[]>;
    // Until "begun" a failure is begin's to throw; after it, done's.
    done.catch(() => undefined);
    await Promise.race([checked, done]);
    return { done };
  }

  /**
   * The whole attach as one call, without begin's "begun" message: sending
   * it, and the agent's event loop waking for it, cost about 0.2 ms of a
   * single attach on a 2-vCPU VM, before the first move. A caller that
   * waits for the end anyway has no use for the news.
   */
  attach(inputs: readonly AttachmentPlanInput[]): Promise<AttachResult[]> {
    return this.#call({ call: "attach", inputs }) as Promise<AttachResult[]>;
  }

  batch<const T extends readonly Op[]>(netns: string | undefined, ops: T): Promise<Results<T>> {
    return batchIn(this, netns, ops);
  }

  batchAcross(ops: readonly PlacedOp[]): Promise<unknown[]> {
    return this.#call({ call: "batch", ops }) as Promise<unknown[]>;
  }

  detach(keys: readonly string[], options: DetachOptions = {}): Promise<Map<string, DetachOutcome>> {
    return this.#call({ call: "detach", keys, options }) as Promise<Map<string, DetachOutcome>>;
  }

  recover(): Promise<Map<string, RecoveryResult>> {
    return this.#call({ call: "recover" }) as Promise<Map<string, RecoveryResult>>;
  }

  retarget(targets: ReadonlyMap<string, string>): Promise<Map<string, RecoveryResult>> {
    return this.#call({ call: "retarget", targets }) as Promise<Map<string, RecoveryResult>>;
  }

  attachments(): Promise<string[]> {
    return this.#call({ call: "attachments" }) as Promise<string[]>;
  }

  attached(keys?: readonly string[]): Promise<string[]> {
    return this.#call({ call: "attached", keys }) as Promise<string[]>;
  }

  podLinks(): Promise<Map<string, Link | null>> {
    return this.#call({ call: "podLinks" }) as Promise<Map<string, Link | null>>;
  }

  /** The operation times of the batches run since the last call, oldest first; none unless `recordOpTimes`. */
  takeOpTimes(): Promise<BatchOpTimes[]> {
    return this.#call({ call: "takeOpTimes" }) as Promise<BatchOpTimes[]>;
  }

  /**
   * The V8 heap of the engine's thread, an isolate of its own that the
   * process's heap figures leave out; undefined while no thread runs.
   */
  async heapStatistics(): Promise<HeapInfo | undefined> {
    const worker = this.#worker;
    if (worker === undefined) return undefined;
    try {
      return await worker.getHeapStatistics();
    } catch {
      // It stopped meanwhile: the next call starts a new one.
      return undefined;
    }
  }

  /** Stops the thread; calls in flight fail. A later call starts a new one. */
  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }

  #call(request: EngineCall, begun?: () => void): Promise<unknown> {
    const worker = this.#ensureWorker();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      // A call in flight keeps the process alive; an idle thread does not.
      worker.ref();
      this.#pending.set(id, { worker, request, resolve, reject, ...(begun !== undefined && { begun }) });
      worker.postMessage({ ...request, id } satisfies EngineRequest);
    });
  }

  #settle(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    if (pending !== undefined && ![...this.#pending.values()].some((p) => p.worker === pending.worker)) pending.worker.unref();
    return pending;
  }

  #ensureWorker(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const data: EngineThreadData = { dir: this.#options.dir, durability: this.#options.durability ?? "restart", recordOpTimes: this.#options.recordOpTimes ?? false, nice: this.#options.nice };
    const worker = new Worker(WORKER_URL, { workerData: data });
    worker.unref();
    let ready: () => void = () => undefined;
    let startFailed: (err: Error) => void = () => undefined;
    this.#ready = new Promise<void>((resolve, reject) => {
      ready = resolve;
      startFailed = reject;
    });
    // Whoever awaits start() hears of a failure; calls fail on their own.
    this.#ready.catch(() => undefined);
    worker.on("message", (reply: EngineReply) => {
      if ("ready" in reply) {
        this.#niceErrno = reply.niceErrno;
        ready();
      }
      else if ("startFailed" in reply) startFailed(errorFromWire(reply.startFailed));
      else if ("begun" in reply) this.#pending.get(reply.id)?.begun?.();
      else if ("error" in reply) this.#settle(reply.id)?.reject(errorFromWire(reply.error));
      else this.#settle(reply.id)?.resolve(reply.value);
    });
    const stopped = (why: string): void => {
      if (this.#worker === worker) this.#worker = undefined;
      startFailed(new EngineError("ENGINE_THREAD", { attachment: "-", device: "-", step: "start" }, `the engine thread stopped: ${why}`));
      for (const [id, { request, worker: owner }] of this.#pending) {
        if (owner !== worker) continue;
        const attachment = request.call === "begin" || request.call === "attach" ? request.inputs.map((p) => p.key).join(",") : request.call === "detach" ? request.keys.join(",") : "-";
        this.#settle(id)?.reject(new EngineError("ENGINE_THREAD", { attachment, device: "-", step: request.call }, `the engine thread stopped before it answered (${why}); the next call starts a new thread, which carries on from the journal`));
      }
    };
    onWorkerStop(worker, stopped);
    this.#worker = worker;
    return worker;
  }
}
