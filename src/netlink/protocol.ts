/** Messages between the main thread (client.ts) and the netlink worker (worker.ts). */
import type { NetlinkErrorWire } from "./errors.ts";
import type { Op } from "./ops.ts";

export interface WorkerRequest {
  id: number;
  /** Network namespace path; undefined runs in the agent's own namespace. */
  netns: string | undefined;
  ops: readonly Op[];
}

export type WorkerReply = { id: number; results: unknown[] } | { id: number; error: NetlinkErrorWire };
