export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /** Returns [0, 1); injectable for tests. */
  readonly random?: () => number;
}

/**
 * Exponential backoff with "equal jitter": attempt n waits between half and
 * all of min(max, initial·2ⁿ), so plugins restarted together do not knock on
 * the runtime in lockstep.
 */
export class Backoff {
  readonly #options: BackoffOptions;
  #attempt = 0;

  constructor(options: BackoffOptions) {
    if (!(options.initialMs > 0 && options.maxMs >= options.initialMs)) {
      throw new RangeError(`Cannot create backoff: need 0 < initialMs <= maxMs, got ${options.initialMs} and ${options.maxMs}`);
    }
    this.#options = options;
  }

  next(): number {
    const ceiling = Math.min(this.#options.maxMs, this.#options.initialMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    const random = this.#options.random ?? Math.random;
    return ceiling / 2 + (ceiling / 2) * random();
  }

  reset(): void {
    this.#attempt = 0;
  }
}
