/**
 * Holds each pod network namespace the engine attached a device into open
 * until the last of its devices is back on the host.
 *
 * CRI-O removes a pod's namespace before it calls NRI StopPodSandbox
 * (cri-o#9905): unheld, the namespace would die first, a virtual device
 * with it and a physical one handed back by the kernel under its pod-side
 * name, with its addresses and routes gone. Held, the namespace outlives its
 * path, and the device leaves it the usual way: under its host name and
 * ifindex, its host state put back. containerd calls StopPodSandbox first,
 * so there the hold changes nothing.
 *
 * The descriptors live in this process only. The engine holds every
 * journaled attachment's namespace, whichever agent process journaled it
 * (AttachEngine.adopt: during a rolling update two agents attach, and the
 * old one's holds end with it). A pod stopped while no agent held its
 * namespace is left to finding its device by identity (restore-steps.ts).
 *
 * Synchronous: the engine runs on a thread of its own, where opening a
 * namespace file (microseconds) costs less than the thread-pool round trip
 * an asynchronous open would add to every attach.
 */
import { closeSync, existsSync, openSync } from "node:fs";

interface Pin {
  readonly fd: number;
  /** The attachments whose devices are in this namespace. */
  readonly keys: Set<string>;
}

export class NamespacePins {
  readonly #byPath = new Map<string, Pin>();
  readonly #pathOf = new Map<string, string>();

  /**
   * Holds `netns` for attachment `key` (moving the key off any namespace it
   * held before). False when the namespace cannot be opened: the caller's
   * own steps then fail on it with the kernel's error.
   */
  pin(key: string, netns: string): boolean {
    if (this.#pathOf.get(key) === netns) return true;
    this.unpin(key);
    let pin = this.#byPath.get(netns);
    if (pin === undefined) {
      let fd: number;
      try {
        fd = openSync(netns, "r");
      } catch {
        return false;
      }
      pin = { fd, keys: new Set() };
      this.#byPath.set(netns, pin);
    }
    pin.keys.add(key);
    this.#pathOf.set(key, netns);
    return true;
  }

  /** Whether attachment `key` holds a namespace. */
  holds(key: string): boolean {
    return this.#pathOf.has(key);
  }

  /** The attachments whose namespaces are held. */
  keys(): IterableIterator<string> {
    return this.#pathOf.keys();
  }

  /** Lets go of every namespace (the agent stops; its process ending does the same). */
  releaseAll(): void {
    for (const key of [...this.#pathOf.keys()]) this.unpin(key);
  }

  /** Lets go of `key`'s namespace; it closes once no attachment holds it. */
  unpin(key: string): void {
    const netns = this.#pathOf.get(key);
    if (netns === undefined) return;
    this.#pathOf.delete(key);
    const pin = this.#byPath.get(netns);
    if (pin === undefined) return;
    pin.keys.delete(key);
    if (pin.keys.size > 0) return;
    this.#byPath.delete(netns);
    try {
      closeSync(pin.fd);
    } catch {
      // Closing a namespace file cannot fail in a way anyone could act on.
    }
  }

  /**
   * Where to open `netns`: through the held descriptor when it is held
   * (the netlink worker is a thread of this process, so /proc/self/fd names
   * the same descriptor there), else the path itself.
   */
  resolve(netns: string): string {
    const pin = this.#byPath.get(netns);
    return pin === undefined ? netns : `/proc/self/fd/${String(pin.fd)}`;
  }

  /** Whether the namespace at `netns` is alive: held here, or still at its path. */
  alive(netns: string): boolean {
    return this.#byPath.has(netns) || existsSync(netns);
  }
}
