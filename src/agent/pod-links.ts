/**
 * How each device netclaim put into a pod looks from inside the pod, kept
 * current for device health (inventory-health.ts): while a device is in a
 * pod the host cannot see it, and its carrier there is what says whether the
 * cable or the link partner is still up.
 *
 * A poll through the engine (one link dump per pod namespace, every
 * `intervalMs`), not a netlink subscription in every pod namespace: the
 * engine already holds those namespaces and runs every netlink request on
 * its thread, and a dump of a pod's few links costs microseconds.
 */
import { errorMessage } from "../common/errors.ts";
import type { PodLinkSource } from "../engine/index.ts";

/** A device in its pod: its link's state, or "missing" when the pod has no such device. */
export type PodLinkState = { readonly up: boolean; readonly carrier: boolean } | "missing";

export const POD_LINK_POLL_MS = 2_000;

/** The DRA device name in an engine journal key (`<claim uid>:<device>`). */
export function deviceOfAttachmentKey(key: string): string {
  return key.slice(key.lastIndexOf(":") + 1);
}

export class PodLinkWatch {
  readonly #source: PodLinkSource;
  readonly #intervalMs: number;
  readonly #onError: (err: unknown) => void;
  readonly #quiet: () => Promise<void>;
  #states: ReadonlyMap<string, PodLinkState> = new Map();
  readonly #listeners = new Set<() => void>();
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;

  /** `quiet` resolves when a poll may run (the agent lets pod starts under way finish first). */
  constructor(source: PodLinkSource, options: { intervalMs?: number; onError: (err: unknown) => void; quiet?: () => Promise<void> }) {
    this.#source = source;
    this.#intervalMs = options.intervalMs ?? POD_LINK_POLL_MS;
    this.#onError = options.onError;
    this.#quiet = options.quiet ?? (() => Promise.resolve());
  }

  /** Polls now and every interval until close(). */
  start(): void {
    const tick = (): void => {
      this.#polling ??= this.#quiet().then(() => this.poll()).finally(() => {
        this.#polling = undefined;
      });
    };
    tick();
    this.#timer = setInterval(tick, this.#intervalMs).unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#polling;
  }

  /** The last poll's states by DRA device name; devices it did not see are absent. */
  byDevice(): ReadonlyMap<string, PodLinkState> {
    return this.#states;
  }

  /** Calls `listener` after a poll that changed any state; dispose the result to stop. */
  onChange(listener: () => void): Disposable {
    this.#listeners.add(listener);
    return {
      [Symbol.dispose]: () => {
        this.#listeners.delete(listener);
      },
    };
  }

  /** One poll; a failed one keeps the last states (the next tries again). */
  async poll(): Promise<void> {
    let links;
    try {
      links = await this.#source.podLinks();
    } catch (err) {
      this.#onError(new Error(`reading the links of devices in pods failed: ${errorMessage(err)}`, { cause: err }));
      return;
    }
    const next = new Map<string, PodLinkState>();
    for (const [key, link] of links) next.set(deviceOfAttachmentKey(key), link === null ? "missing" : { up: link.up, carrier: link.carrier });
    const changed = next.size !== this.#states.size || [...next].some(([device, state]) => !sameState(state, this.#states.get(device)));
    this.#states = next;
    if (changed) for (const listener of [...this.#listeners]) listener();
  }
}

function sameState(a: PodLinkState, b: PodLinkState | undefined): boolean {
  if (a === "missing" || b === "missing" || b === undefined) return a === b;
  return a.up === b.up && a.carrier === b.carrier;
}
