/** Messages between EngineThread (thread.ts) and the engine's thread (worker.ts). */
import { NetlinkError, type Link, type NetlinkErrorWire, type PlacedOp } from "../netlink/index.ts";
import { StoreError, type Durability, type StoreErrorCode } from "../store/index.ts";
import { EngineError, type EngineErrorWire } from "./errors.ts";
import type { DetachOptions } from "./attacher.ts";
import type { AttachmentPlanInput } from "./plan.ts";

export interface EngineThreadData {
  /** The journal's directory. */
  dir: string;
  durability: Durability;
  /** Keep every batch's operation times for takeOpTimes (benchmarks). */
  recordOpTimes: boolean;
  /** The thread's nice value; absent, it keeps the process's. */
  nice?: number | undefined;
}

/** The operation times of one batch (see OpTimesListener). */
export interface BatchOpTimes {
  ops: readonly PlacedOp[];
  opMs: readonly number[];
}

/** One call of the Attacher interface, as data. */
export type EngineCall =
  | { call: "begin"; inputs: readonly AttachmentPlanInput[]; podLinks?: readonly Link[] }
  /** An attach whose caller waits for the end: no "begun" on the way (see EngineThread.attach). */
  | { call: "attach"; inputs: readonly AttachmentPlanInput[] }
  /** A netlink batch of the agent's own (BatchRunner), run on the engine's thread. */
  | { call: "batch"; ops: readonly PlacedOp[] }
  | { call: "detach"; keys: readonly string[]; options: DetachOptions }
  | { call: "retarget"; targets: ReadonlyMap<string, string> }
  | { call: "attached"; keys?: readonly string[] | undefined }
  | { call: "recover" | "attachments" | "podLinks" }
  /** The op times kept since the last ask (EngineThread.takeOpTimes), benchmarks only. */
  | { call: "takeOpTimes" };

export type EngineRequest = EngineCall & { id: number };

export type EngineReply =
  /** The store is open: requests are served. */
  /** `niceErrno`: the kernel refused the thread's nice value (EngineThreadOptions.nice). */
  | { ready: true; niceErrno?: number }
  | { startFailed: ErrorWire }
  | CallReply;

/** An answer to request `id`. */
export type CallReply =
  /** The attach of request `id` is checked and journaled; its moves follow. */
  | { id: number; begun: true }
  | { id: number; value: unknown }
  | { id: number; error: ErrorWire };

/** An error as plain data, keeping the classes callers look at. */
export type ErrorWire =
  | { kind: "engine"; error: EngineErrorWire }
  | { kind: "netlink"; error: NetlinkErrorWire }
  | { kind: "store"; code: StoreErrorCode; file: string; message: string }
  | { kind: "other"; message: string };

export function errorToWire(err: unknown): ErrorWire {
  if (err instanceof EngineError) return { kind: "engine", error: err.toWire() };
  if (err instanceof NetlinkError) return { kind: "netlink", error: err.toWire() };
  if (err instanceof StoreError) return { kind: "store", code: err.code, file: err.file, message: err.message };
  return { kind: "other", message: err instanceof Error ? err.message : String(err) };
}

export function errorFromWire(w: ErrorWire): Error {
  switch (w.kind) {
    case "engine":
      return EngineError.fromWire(w.error);
    case "netlink":
      return NetlinkError.fromWire(w.error);
    case "store":
      return new StoreError(w.code, w.file, w.message);
    case "other":
      return new Error(w.message);
  }
}
