/**
 * How long the agent's own work held its event loop, told apart from the
 * thread waiting for a CPU. The event loop's delay (prom-client's
 * `nodejs_eventloop_lag_*`) counts both: on a busy node, a main thread that
 * is runnable but not running delays the loop as much as a long task does.
 *
 * A timer ticks every 10 ms and reads the main thread's CPU time
 * (`process.threadCpuUsage`, user and system): the CPU time the thread used
 * between two ticks bounds from above the longest stretch its own work
 * (JavaScript, garbage collection, synchronous system calls) kept the loop
 * from turning. The longest since the last read is kept.
 */
const TICK_MS = 10;

export class EventLoopBusy {
  #timer: NodeJS.Timeout | undefined;
  #lastCpuMicros = 0;
  #maxMicros = 0;

  /** Starts ticking; the timer never keeps the process alive. */
  static start(): EventLoopBusy {
    const busy = new EventLoopBusy();
    busy.#lastCpuMicros = threadCpuMicros();
    busy.#timer = setInterval(() => {
      busy.#tick();
    }, TICK_MS).unref();
    return busy;
  }

  /** The longest stretch, in seconds, since the last call (or the start); starts a new one. */
  takeMax(): number {
    this.#tick();
    const max = this.#maxMicros;
    this.#maxMicros = 0;
    return max / 1e6;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = threadCpuMicros();
    this.#maxMicros = Math.max(this.#maxMicros, now - this.#lastCpuMicros);
    this.#lastCpuMicros = now;
  }
}

function threadCpuMicros(): number {
  const { user, system } = process.threadCpuUsage();
  return user + system;
}
