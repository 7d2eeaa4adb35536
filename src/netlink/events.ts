/**
 * Link-event subscription (RTMGRP_LINK) for the inventory: a dedicated
 * thread receives RTM_NEWLINK/RTM_DELLINK for the agent's namespace and the
 * callback runs on the main thread.
 */
import { extname } from "node:path";
import type { HeapInfo } from "node:v8";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Link } from "./rtnl.ts";

const WORKER_URL = new URL(`./events-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export type LinkEvent =
  | { kind: "new" | "delete"; link: Link }
  /** The kernel dropped events (socket buffer overflow): rescan everything. */
  | { kind: "overflow" }
  /** The subscription is live; changes before this were not reported: rescan once. */
  | { kind: "subscribed" };

export interface LinkSubscription {
  /** Resolves once the subscription's thread has stopped. */
  close(): Promise<void>;
  /** The V8 heap of the subscription's thread; undefined once it stopped. */
  heapStatistics(): Promise<HeapInfo | undefined>;
}

/**
 * Calls `onEvent` for every link change in the agent's network namespace
 * until closed. `onError` hears of a failed subscription (the thread ended).
 */
export function subscribeLinkEvents(onEvent: (event: LinkEvent) => void, onError: (err: Error) => void = () => undefined): LinkSubscription {
  const worker = new Worker(WORKER_URL);
  worker.unref();
  let closing = false;
  worker.on("message", onEvent);
  worker.on("error", (err: Error) => {
    if (!closing) onError(err);
  });
  return {
    async close() {
      closing = true;
      await worker.terminate();
    },
    heapStatistics: () => worker.getHeapStatistics().catch(() => undefined),
  };
}

/**
 * The shape the inventory consumes (start/stop, what changed): a link event
 * names its link; an overflow and the subscription becoming live (which
 * covers changes between the first scan and the subscription) name none,
 * since any link may have changed.
 */
export function linkEventSource(): {
  start(onChange: (links?: readonly string[]) => void): void;
  stop(): void;
  heapStatistics(): Promise<HeapInfo | undefined>;
} {
  let sub: LinkSubscription | undefined;
  return {
    start(onChange) {
      sub ??= subscribeLinkEvents((event) => {
        if (event.kind === "new" || event.kind === "delete") onChange([event.link.name]);
        else onChange();
      });
    },
    stop() {
      void sub?.close();
      sub = undefined;
    },
    heapStatistics: () => sub?.heapStatistics() ?? Promise.resolve(undefined),
  };
}
