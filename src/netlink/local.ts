/**
 * Operation batches on the calling thread, for code that runs on a worker
 * thread of its own (the attach engine's): a batch blocks that thread, never
 * the agent's event loop, and costs no round trip to another thread.
 */
import { openSync } from "node:fs";
import { isMainThread } from "node:worker_threads";
import { batchIn, OpExecutor, ThreadPoisoned, type BatchRunner, type Op, type OpTimesListener, type PlacedOp, type Results } from "./ops.ts";

export class LocalNetlink implements BatchRunner {
  readonly #executor: OpExecutor;
  readonly #onOpTimes: OpTimesListener | undefined;

  constructor(options: { onOpTimes?: OpTimesListener } = {}) {
    if (isMainThread) throw new Error("LocalNetlink blocks its thread: use it on a worker thread, and NetlinkClient on the main one");
    // The thread starts in the agent's namespace; remember it to come back to.
    this.#executor = new OpExecutor(openSync("/proc/thread-self/ns/net", "r"));
    this.#onOpTimes = options.onOpTimes;
  }

  batch<const T extends readonly Op[]>(netns: string | undefined, ops: T): Promise<Results<T>> {
    return batchIn(this, netns, ops);
  }

  batchAcross(ops: readonly PlacedOp[]): Promise<unknown[]> {
    const opMs: number[] = [];
    let results: unknown[];
    try {
      results = this.#executor.runBatch(ops, opMs);
    } catch (err) {
      // Stuck in a pod's namespace, this thread must run nothing more.
      if (err instanceof ThreadPoisoned) process.exit(1);
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    this.#onOpTimes?.(ops, opMs);
    return Promise.resolve(results);
  }
}
