/**
 * The netlink worker thread: runs op batches (ops.ts) one at a time. Every
 * call blocks this thread, never the agent's event loop: a netns move alone
 * blocks ~20 ms inside the kernel.
 */
import { openSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { NetlinkError } from "./errors.ts";
import { OpExecutor, ThreadPoisoned, type PlacedOp } from "./ops.ts";
import type { WorkerReply, WorkerRequest } from "./protocol.ts";

const port = parentPort;
if (port === null) throw new Error("netlink/worker.ts must run as a worker thread");

// The thread starts in the agent's namespace; remember it to come back to.
const executor = new OpExecutor(openSync("/proc/thread-self/ns/net", "r"));

port.on("message", (req: WorkerRequest) => {
  port.postMessage(handle(req.id, req.ops));
});

function handle(id: number, ops: readonly PlacedOp[]): WorkerReply {
  try {
    const opMs: number[] = [];
    return { id, results: executor.runBatch(ops, opMs), opMs };
  } catch (err) {
    if (err instanceof ThreadPoisoned) {
      port?.postMessage({ id, error: { code: "NETLINK_WORKER", message: err.message, context: {} } } satisfies WorkerReply);
      process.exit(1);
    }
    if (err instanceof NetlinkError) return { id, error: err.toWire() };
    return { id, error: { code: "NETLINK_WORKER", message: `netlink worker: ${err instanceof Error ? err.message : String(err)}`, context: {} } };
  }
}
