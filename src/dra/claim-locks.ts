/**
 * Serializes work on one claim, within this process and across agent
 * instances that share the state directory (rolling updates), while work on
 * different claims runs concurrently.
 *
 * Across processes: flock on one of a fixed set of lock files, chosen by a
 * hash of the claim UID. A lock file per claim would have to be deleted
 * some day, and deleting a flock file races with a process that opened it
 * but does not hold it yet; a fixed set never needs deleting, and the kernel
 * releases a lock when its holder dies (kill -9). Two claims that share a
 * stripe wait for each other, which costs a little concurrency, never
 * correctness: each holder takes exactly one lock, so no deadlock exists.
 *
 * Within this process: a promise chain per stripe, so waiters queue in order
 * instead of polling flock.
 */
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { FileLock } from "../store/index.ts";

export const DEFAULT_LOCK_STRIPES = 64;

export class ClaimLocks {
  readonly #dir: string;
  readonly #stripes: number;
  readonly #tails = new Map<number, Promise<void>>();
  #ready: Promise<unknown> | undefined;

  constructor(dir: string, stripes = DEFAULT_LOCK_STRIPES) {
    if (!Number.isInteger(stripes) || stripes < 1 || stripes > 4096) {
      throw new RangeError(`Cannot use ${stripes} lock stripes: use an integer from 1 to 4096`);
    }
    this.#dir = dir;
    this.#stripes = stripes;
  }

  /** Runs `fn` while holding the claim's lock. */
  async run<T>(claimUID: string, options: { signal: AbortSignal }, fn: () => Promise<T>): Promise<T> {
    const lock = await this.acquire(claimUID, options);
    try {
      return await fn();
    } finally {
      await lock[Symbol.asyncDispose]();
    }
  }

  /** Waits until this process holds the claim's lock; dispose it to release. */
  async acquire(claimUID: string, options: { signal: AbortSignal }): Promise<AsyncDisposable> {
    this.#ready ??= mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await this.#ready;
    const stripe = this.stripeOf(claimUID);
    const previous = this.#tails.get(stripe) ?? Promise.resolve();
    let releaseLocal!: () => void;
    const mine = new Promise<void>((resolve) => {
      releaseLocal = resolve;
    });
    const tail = previous.then(() => mine);
    this.#tails.set(stripe, tail);
    const releaseQueue = (): void => {
      releaseLocal();
      if (this.#tails.get(stripe) === tail) this.#tails.delete(stripe);
    };
    try {
      await abortable(previous, options.signal);
      const fileLock = await FileLock.acquire(join(this.#dir, `claims-${stripe}.lock`), { signal: options.signal });
      return {
        [Symbol.asyncDispose]: async () => {
          try {
            await fileLock.release();
          } finally {
            releaseQueue();
          }
        },
      };
    } catch (err) {
      // Leave the queue once those ahead of us are done, so the next waiter
      // still waits for them (not only for the file lock) and order is kept.
      void previous.then(releaseQueue);
      throw err;
    }
  }

  /** Which lock file guards a claim (exposed for tests). */
  stripeOf(claimUID: string): number {
    return createHash("sha256").update(claimUID).digest().readUInt32BE(0) % this.#stripes;
  }
}

/** Waits for `promise` (which never rejects) unless `signal` aborts first. */
async function abortable(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      reject(signal.reason as Error);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
