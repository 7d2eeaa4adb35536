/**
 * The agent's metrics, declared in one place on one registry (the DRA
 * plugin's claim metrics included), listed in docs/metrics.md. Events are
 * counted where they pass through: the engine calls of pods' attaches and
 * detaches, and the API client's failed requests. Levels (devices, the NRI
 * connection) are read from the parts at scrape time, so nothing has to
 * remember to update them.
 */
import type { HeapInfo } from "node:v8";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { DraMetrics } from "../dra/index.ts";
import type { Attacher } from "../engine/index.ts";
import type { KubeApiError } from "../kube/index.ts";
import type { NriConnectionState } from "../nri/index.ts";
import type { EventLoopBusy } from "./event-loop-busy.ts";

export type EngineOperation = "attach" | "detach";

/** What the thread heap gauge reads of v8's heap statistics. */
export type ThreadHeap = Pick<HeapInfo, "used_heap_size" | "total_heap_size">;

/** The agent's long-lived worker threads, each with a V8 heap of its own. */
export type AgentThread = "engine" | "link-events";

const NRI_STATES: readonly NriConnectionState[] = ["disconnected", "connected", "closed"];

/** The device counts the gauges report, each read when scraped. */
export interface DeviceCounts {
  published: () => number;
  prepared: () => Promise<number>;
  attached: () => number;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly dra = new DraMetrics(this.registry);
  readonly #engineOperations: Counter<"operation" | "status">;
  readonly #engineSeconds: Histogram<"operation">;
  readonly #kubeErrors: Counter<"method" | "code">;
  #nriState: (() => NriConnectionState) | undefined;
  #devices: DeviceCounts | undefined;
  #loopBusy: EventLoopBusy | undefined;
  readonly #threadHeaps = new Map<AgentThread, () => Promise<ThreadHeap | undefined>>();

  constructor() {
    const registers = [this.registry];
    // The process's memory and the event loop's delay: what says whether the agent holds steady under churn.
    collectDefaultMetrics({ register: this.registry, prefix: "netclaim_" });
    this.#engineOperations = new Counter({
      name: "netclaim_engine_operations_total",
      help: "Attaches and detaches of one pod's devices by outcome",
      labelNames: ["operation", "status"],
      registers,
    });
    this.#engineSeconds = new Histogram({
      name: "netclaim_engine_operation_seconds",
      help: "Time to attach or detach one pod's devices, checks and journal included",
      labelNames: ["operation"],
      buckets: [0.001, 0.005, 0.025, 0.1, 0.5, 2, 10],
      registers,
    });
    this.#kubeErrors = new Counter({
      name: "netclaim_kube_api_request_errors_total",
      help: "Kubernetes API requests that failed, by method and HTTP status (transport or decode when there is none)",
      labelNames: ["method", "code"],
      registers,
    });
    const nriState = (): NriConnectionState | undefined => this.#nriState?.();
    new Gauge({
      name: "netclaim_nri_connection_state",
      help: "1 for the state the NRI connection is in (disconnected, connected, closed), 0 for the others",
      labelNames: ["state"],
      registers,
      collect() {
        const now = nriState() ?? "disconnected";
        for (const state of NRI_STATES) this.set({ state }, state === now ? 1 : 0);
      },
    });
    const devices = (): DeviceCounts | undefined => this.#devices;
    const deviceGauge = (name: string, help: string, read: (counts: DeviceCounts) => number | Promise<number>): void => {
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          const counts = devices();
          this.set(counts === undefined ? 0 : await read(counts));
        },
      });
    };
    const loopBusy = (): EventLoopBusy | undefined => this.#loopBusy;
    new Gauge({
      name: "netclaim_event_loop_busy_max_seconds",
      help: "The main thread's longest CPU time between two ticks of a 10 ms timer since the last scrape: how long the agent's own work held its event loop, without the time it waited for a CPU",
      registers,
      collect() {
        this.set(loopBusy()?.takeMax() ?? 0);
      },
    });
    const threadHeaps = this.#threadHeaps;
    new Gauge({
      name: "netclaim_thread_heap_bytes",
      help: "The V8 heap of each of the agent's worker threads, which netclaim_nodejs_heap_* leave out: used, and total (reserved)",
      labelNames: ["thread", "kind"],
      registers,
      async collect() {
        const threads: readonly AgentThread[] = ["engine", "link-events"];
        const heaps = await Promise.all(threads.map((thread) => threadHeaps.get(thread)?.() ?? Promise.resolve(undefined)));
        for (const [i, thread] of threads.entries()) {
          this.set({ thread, kind: "used" }, heaps[i]?.used_heap_size ?? 0);
          this.set({ thread, kind: "total" }, heaps[i]?.total_heap_size ?? 0);
        }
      },
    });
    deviceGauge("netclaim_devices_published", "Devices in this node's ResourceSlices as last observed", (counts) => counts.published());
    deviceGauge("netclaim_devices_prepared", "Devices of prepared claims", (counts) => counts.prepared());
    deviceGauge("netclaim_devices_attached", "Devices in a pod's network namespace, or on their way there", (counts) => counts.attached());
  }

  /** Reports the NRI connection as `state` says from now on. */
  trackNri(state: () => NriConnectionState): void {
    this.#nriState = state;
  }

  /** Reports the device gauges from `counts` from now on; 0 until then. */
  trackDevices(counts: DeviceCounts): void {
    this.#devices = counts;
  }

  /** Reports the event loop's longest busy stretch from `busy` from now on; 0 until then. */
  trackEventLoop(busy: EventLoopBusy): void {
    this.#loopBusy = busy;
  }

  /** Reports `thread`'s heap from `heap` from now on; 0 until then and while the thread does not run. */
  trackThreadHeap(thread: AgentThread, heap: () => Promise<ThreadHeap | undefined>): void {
    this.#threadHeaps.set(thread, heap);
  }

  /** For KubeClient's onError. */
  kubeRequestFailed(err: KubeApiError): void {
    const code = err.status !== 0 ? String(err.status) : err.code === "KUBE_DECODE" ? "decode" : "transport";
    this.#kubeErrors.inc({ method: err.method, code });
  }

  /** `engine`, timing and counting its attaches (begin to done) and detaches. */
  instrument(engine: Attacher): Attacher {
    const observe = (operation: EngineOperation, started: number, status: "success" | "failed"): void => {
      this.#engineOperations.inc({ operation, status });
      this.#engineSeconds.observe({ operation }, (performance.now() - started) / 1000);
    };
    const timed = async <R>(operation: EngineOperation, run: () => Promise<R>): Promise<R> => {
      const started = performance.now();
      try {
        const result = await run();
        observe(operation, started, "success");
        return result;
      } catch (err) {
        observe(operation, started, "failed");
        throw err;
      }
    };
    return {
      begin: async (inputs, options) => {
        const started = performance.now();
        let begun: Awaited<ReturnType<Attacher["begin"]>>;
        try {
          begun = await engine.begin(inputs, options);
        } catch (err) {
          observe("attach", started, "failed");
          throw err;
        }
        begun.done.then(
          () => {
            observe("attach", started, "success");
          },
          () => {
            observe("attach", started, "failed");
          },
        );
        return begun;
      },
      attach: (inputs) => timed("attach", () => engine.attach(inputs)),
      detach: (keys, options) => timed("detach", () => engine.detach(keys, options)),
      recover: () => engine.recover(),
      retarget: (targets) => engine.retarget(targets),
      attachments: () => engine.attachments(),
      attached: (keys) => engine.attached(keys),
    };
  }
}
