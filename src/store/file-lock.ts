/**
 * An exclusive advisory lock on a file (flock(2)), shared between processes:
 * two agent instances overlap during a rolling update and must not prepare
 * or unprepare the same claim at once. The kernel drops the lock when the
 * holder dies, so a `kill -9` never leaves a stale lock behind.
 *
 * flock is called non-blocking and retried on a timer, so waiting never
 * blocks the event loop.
 */
import { open, type FileHandle } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { lastErrno, libc } from "../common/libc.ts";
import { StoreError } from "./store.ts";

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EWOULDBLOCK = 11;
const EINTR = 4;

const flock = libc.func("int flock(int fd, int operation)") as (fd: number, operation: number) => number;

export interface FileLockOptions {
  signal?: AbortSignal;
  /** How often to retry while another process holds the lock. */
  pollMs?: number;
}

export class FileLock implements AsyncDisposable {
  readonly path: string;
  #handle: FileHandle | undefined;

  private constructor(path: string, handle: FileHandle) {
    this.path = path;
    this.#handle = handle;
  }

  /** Waits until the lock on `path` (created if missing) is ours. */
  static async acquire(path: string, options: FileLockOptions = {}): Promise<FileLock> {
    const pollMs = options.pollMs ?? 5;
    const handle = await open(path, "a", 0o600);
    try {
      for (;;) {
        options.signal?.throwIfAborted();
        if (flock(handle.fd, LOCK_EX | LOCK_NB) === 0) return new FileLock(path, handle);
        const errno = lastErrno();
        if (errno !== EWOULDBLOCK && errno !== EINTR) {
          throw new StoreError("STORE_IO", path, `Cannot lock ${path}: flock failed with errno ${errno}`);
        }
        try {
          await sleep(pollMs, undefined, options.signal ? { signal: options.signal } : {});
        } catch (err) {
          // Surface the caller's reason (a TimeoutError from AbortSignal.timeout), not a generic AbortError.
          options.signal?.throwIfAborted();
          throw err;
        }
      }
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Releases the lock; releasing twice is harmless. */
  async release(): Promise<void> {
    const handle = this.#handle;
    if (handle === undefined) return;
    this.#handle = undefined;
    flock(handle.fd, LOCK_UN);
    await handle.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}
