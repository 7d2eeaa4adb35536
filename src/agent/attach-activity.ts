/**
 * Pod starts under way, for the background work that can wait for them to
 * end: device scans and the poll of devices in pods. On a node that starts
 * a pod, the runtime's own link changes (CNI's veth) set off a device scan
 * about when NRI RunPodSandbox arrives, and a scan, like the poll, reads
 * netlink on the engine's thread and files on the main one: measured on a
 * real node (bench-nri-attach), work beside an attach stretches the time to
 * a configured interface, its tail most (docs/engine.md). That work can
 * wait a few milliseconds; a pod's start cannot.
 */

/** The longest background work waits for a quiet moment: a node that never stops starting pods still scans. */
const QUIET_WAIT_MAX_MS = 1_000;

export class AttachActivity {
  #running = 0;
  #waiters: (() => void)[] = [];

  /** Counts `work` as a pod start under way until it settles. */
  async track<T>(work: () => Promise<T>): Promise<T> {
    this.#running++;
    try {
      return await work();
    } finally {
      if (--this.#running === 0) {
        const waiters = this.#waiters;
        this.#waiters = [];
        for (const wake of waiters) wake();
      }
    }
  }

  /** Resolves when no pod start is under way, or after `maxWaitMs`, whichever comes first. */
  quiet(maxWaitMs = QUIET_WAIT_MAX_MS): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(wake, maxWaitMs);
      timer.unref();
      function wake(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.push(wake);
    });
  }
}
