/** Messages between the main thread (client.ts) and the netlink worker (worker.ts). */
import type { NetlinkErrorWire } from "./errors.ts";
import type { PlacedOp } from "./ops.ts";

export interface WorkerRequest {
  id: number;
  ops: readonly PlacedOp[];
}

/** `opMs`: how long each operation took on the worker thread (mostly inside the kernel). */
export type WorkerReply = { id: number; results: unknown[]; opMs: number[] } | { id: number; error: NetlinkErrorWire };
