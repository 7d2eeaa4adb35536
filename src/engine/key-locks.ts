/**
 * One call at a time per attachment. The engine's thread serves calls
 * concurrently, and recovery now runs beside the agent's attaches and
 * detaches (on NRI reconnects and on a timer), so an attach, a detach and a
 * recovery of the same journal key must never interleave their steps.
 * Recovery never waits: it leaves a key someone holds to its holder.
 */
export class KeyLocks {
  /** Held keys, each with a promise that settles when its holder releases it. */
  readonly #held = new Map<string, Promise<undefined>>();

  /** Waits until none of `keys` is held, then holds them all until the returned function is called. */
  async acquire(keys: readonly string[]): Promise<() => void> {
    for (;;) {
      const busy = keys.flatMap((key) => this.#held.get(key) ?? []);
      if (busy.length === 0) return this.#hold(keys);
      await Promise.all(busy);
    }
  }

  /** Holds `key` when nobody does; undefined when someone does. */
  tryAcquire(key: string): (() => void) | undefined {
    return this.#held.has(key) ? undefined : this.#hold([key]);
  }

  #hold(keys: readonly string[]): () => void {
    const { promise, resolve } = Promise.withResolvers<undefined>();
    for (const key of keys) this.#held.set(key, promise);
    return () => {
      for (const key of keys) if (this.#held.get(key) === promise) this.#held.delete(key);
      resolve(undefined);
    };
  }
}
