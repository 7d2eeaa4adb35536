/**
 * A LinkEventSource for when no netlink subscription is available: it lists
 * /sys/class/net every `intervalMs` and reports a change when the set of
 * interface names differs. A readdir of sysfs costs microseconds, so a short
 * interval gives sub-second hotplug detection at negligible cost. Attribute
 * changes (MTU, state) are picked up by the inventory's periodic resync or by
 * a netlink source plugged in instead of this one.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { LinkEventSource, Timers } from "./inventory.ts";

export interface SysfsLinkPollerOptions {
  root?: string;
  intervalMs?: number;
  timers?: Timers;
}

export class SysfsLinkPoller implements LinkEventSource {
  readonly #dir: string;
  readonly #intervalMs: number;
  readonly #timers: Timers;
  #timer: unknown;
  #last = "";
  #running = false;

  constructor(options: SysfsLinkPollerOptions = {}) {
    this.#dir = join(options.root ?? "/", "sys/class/net");
    this.#intervalMs = options.intervalMs ?? 250;
    this.#timers = options.timers ?? {
      setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
      clearTimeout: (handle) => {
        clearTimeout(handle as NodeJS.Timeout);
      },
    };
  }

  start(onChange: () => void): void {
    this.#running = true;
    const tick = async (): Promise<void> => {
      let names: string;
      try {
        names = (await readdir(this.#dir)).sort().join("\n");
      } catch {
        names = "";
      }
      if (!this.#running) return;
      if (this.#last !== "" && names !== this.#last) onChange();
      this.#last = names;
      this.#timer = this.#timers.setTimeout(() => void tick(), this.#intervalMs);
    };
    void tick();
  }

  stop(): void {
    this.#running = false;
    this.#timers.clearTimeout(this.#timer);
  }
}
