/**
 * The main thread's netlink API. Every method is async and runs on one
 * worker thread, in order, so blocking kernel work (a netns move blocks
 * ~20 ms) never stalls the event loop that serves DRA and NRI. If the
 * worker dies, pending calls fail with NETLINK_WORKER and the next call
 * starts a fresh one.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { onWorkerStop } from "../common/worker-exit.ts";
import { NetlinkError } from "./errors.ts";
import { batchIn, type BatchRunner, type LinkUpdate, type Op, type OpTimesListener, type PlacedOp, type Results, type ResultOf } from "./ops.ts";
import type { WorkerReply, WorkerRequest } from "./protocol.ts";
import type { Family } from "./ip.ts";
import type { AddressSpec, NewLinkSpec, RouteSpec } from "./rtnl.ts";

// Built code runs worker.js, source runs worker.ts: follow this file's extension.
const WORKER_URL = new URL(`./worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

interface Pending {
  ops: readonly PlacedOp[];
  resolve: (results: unknown[]) => void;
  reject: (err: Error) => void;
}

export interface NetlinkClientOptions {
  onOpTimes?: OpTimesListener;
}

export class NetlinkClient implements BatchRunner {
  #worker: Worker | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #onOpTimes: OpTimesListener | undefined;

  constructor(options: NetlinkClientOptions = {}) {
    this.#onOpTimes = options.onOpTimes;
  }

  batch<const T extends readonly Op[]>(netns: string | undefined, ops: T): Promise<Results<T>> {
    return batchIn(this, netns, ops);
  }

  /**
   * One round trip to the worker: a move and the configuration inside the
   * pod need not wait for each other's reply.
   */
  batchAcross(ops: readonly PlacedOp[]): Promise<unknown[]> {
    const id = this.#nextId++;
    const worker = this.#ensureWorker();
    return new Promise<unknown[]>((resolve, reject) => {
      this.#pending.set(id, { ops, resolve, reject });
      worker.postMessage({ id, ops } satisfies WorkerRequest);
    });
  }

  async #one<O extends Op>(netns: string | undefined, op: O): Promise<ResultOf<O>> {
    const [result] = await this.batch(netns, [op] as const);
    return result;
  }

  getLink(netns: string | undefined, key: { index: number } | { name: string }) {
    return this.#one(netns, { op: "getLink", key });
  }

  listLinks(netns?: string) {
    return this.#one(netns, { op: "listLinks" });
  }

  setLink(netns: string | undefined, index: number, device: string, update: LinkUpdate) {
    return this.#one(netns, { op: "setLink", index, device, update });
  }

  createLink(netns: string | undefined, spec: NewLinkSpec) {
    return this.#one(netns, { op: "createLink", spec });
  }

  deleteLink(netns: string | undefined, index: number, device: string) {
    return this.#one(netns, { op: "deleteLink", index, device });
  }

  listAddresses(netns?: string, index?: number) {
    return this.#one(netns, index === undefined ? { op: "listAddresses" } : { op: "listAddresses", index });
  }

  addAddress(netns: string | undefined, spec: AddressSpec, device: string) {
    return this.#one(netns, { op: "addAddress", spec, device });
  }

  listRoutes(netns: string | undefined, family: Family, oif?: number) {
    return this.#one(netns, oif === undefined ? { op: "listRoutes", family } : { op: "listRoutes", family, oif });
  }

  addRoute(netns: string | undefined, spec: RouteSpec, device: string) {
    return this.#one(netns, { op: "addRoute", spec, device });
  }

  rdmaNetnsMode() {
    return this.#one(undefined, { op: "rdmaNetnsMode" });
  }

  rdmaListDevices() {
    return this.#one(undefined, { op: "rdmaListDevices" });
  }

  rdmaSetNetns(index: number, device: string, netns: string) {
    return this.#one(undefined, { op: "rdmaSetNetns", index, device, netns });
  }

  /**
   * Starts the worker thread and waits until it answers. The agent calls it
   * at start-up, so the first attach does not pay the thread's start (a few
   * hundred milliseconds of module loading) inside the runtime's 2 s budget.
   */
  async start(): Promise<void> {
    await this.batch(undefined, []);
  }

  /** Stops the worker; pending calls fail. */
  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }

  #ensureWorker(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(WORKER_URL);
    // An idle worker must not keep the agent (or a test) alive.
    worker.unref();
    worker.on("message", (reply: WorkerReply) => {
      const pending = this.#pending.get(reply.id);
      if (pending === undefined) return;
      this.#pending.delete(reply.id);
      if ("error" in reply) {
        pending.reject(NetlinkError.fromWire(reply.error));
        return;
      }
      this.#onOpTimes?.(pending.ops, reply.opMs);
      pending.resolve(reply.results);
    });
    const fail = (why: string): void => {
      if (this.#worker === worker) this.#worker = undefined;
      for (const [id, p] of this.#pending) {
        this.#pending.delete(id);
        p.reject(new NetlinkError("NETLINK_WORKER", `netlink worker stopped: ${why}`));
      }
    };
    onWorkerStop(worker, fail);
    this.#worker = worker;
    return worker;
  }
}
