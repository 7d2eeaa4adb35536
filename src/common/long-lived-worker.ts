/**
 * A worker thread that lives as long as the agent (the engine's, the link
 * events'), with V8 limits fit for one.
 *
 * Their live data is small and steady, but V8 sizes a thread's young
 * generation by its allocation rate, up to 192 MiB on a large host, and
 * keeps what it reserved: under pod churn the engine thread's reserved heap
 * grew 4.5-5.5 MiB in every 10-minute run while its heap in use stayed flat
 * (docs/scale.md). Capped at the size it starts with, it never grows; what
 * survives a scavenge goes to the old generation, which V8 shrinks again.
 */
import { Worker, type WorkerOptions } from "node:worker_threads";

export const LONG_LIVED_YOUNG_GENERATION_MB = 4;

export function startLongLivedWorker(url: URL, options: Omit<WorkerOptions, "resourceLimits"> = {}): Worker {
  return new Worker(url, { ...options, resourceLimits: { maxYoungGenerationSizeMb: LONG_LIVED_YOUNG_GENERATION_MB } });
}
