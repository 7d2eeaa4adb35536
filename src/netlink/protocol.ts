/** Messages between the main thread (client.ts) and the netlink worker (worker.ts). */
import type { NetlinkErrorWire } from "./errors.ts";
import type { PlacedOp } from "./ops.ts";

export interface WorkerRequest {
  id: number;
  ops: readonly PlacedOp[];
}

export type WorkerReply = { id: number; results: unknown[] } | { id: number; error: NetlinkErrorWire };
