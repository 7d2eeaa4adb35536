/**
 * Tracks how long handlers take against the runtime's request timeout, and
 * warns while a handler is still running once it has used a share of it, so
 * a slow attach is visible before the runtime drops the plugin.
 */
export interface BudgetLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface HandlerBudgetOptions {
  /** The share of the request timeout after which a running handler is reported (0 < f < 1). */
  readonly warnFraction: number;
  readonly logger: BudgetLogger;
}

export class HandlerBudget {
  readonly #options: HandlerBudgetOptions;
  #requestTimeoutMs: number;

  constructor(requestTimeoutMs: number, options: HandlerBudgetOptions) {
    if (!(options.warnFraction > 0 && options.warnFraction < 1)) {
      throw new RangeError(`Cannot track handler budget: warnFraction must be in (0, 1), got ${options.warnFraction}`);
    }
    this.#options = options;
    this.#requestTimeoutMs = requestTimeoutMs;
  }

  /** The runtime's request timeout, as Configure reported it. */
  set requestTimeoutMs(ms: number) {
    this.#requestTimeoutMs = ms;
  }

  get warnAfterMs(): number {
    return this.#requestTimeoutMs * this.#options.warnFraction;
  }

  /** Runs `work`, warning once if it is still running after warnAfterMs. */
  async track<T>(method: string, subject: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const timer = setTimeout(() => {
      this.#options.logger.warn(
        { method, subject, elapsedMs: Math.round(performance.now() - started), requestTimeoutMs: this.#requestTimeoutMs },
        "NRI handler is still running and close to the runtime's request timeout; the runtime drops the plugin when it passes",
      );
    }, this.warnAfterMs);
    try {
      return await work();
    } finally {
      clearTimeout(timer);
    }
  }
}
