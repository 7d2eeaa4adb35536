/** When a worker thread stops, for whatever reason, with a reason fit for an error message. */
import type { Worker } from "node:worker_threads";

export function onWorkerStop(worker: Worker, stopped: (why: string) => void): void {
  worker.on("error", (err: Error) => {
    stopped(err.message);
  });
  worker.on("exit", (code) => {
    stopped(`exit code ${code}`);
  });
}
