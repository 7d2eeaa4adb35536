/**
 * Crash-safe state on disk: named collections of JSON records, one file per
 * record. A write goes to a temporary file, is fsynced, renamed over the old
 * file and the directory is fsynced, so after `kill -9` or a power cut at any
 * point a reader sees either the old record or the new one, never a mix.
 *
 * Reads always go to disk: two agent instances overlap during a DaemonSet
 * rolling update and either may unprepare what the other prepared, so no
 * process may trust a cached copy. Records are small and reads cost tens of
 * microseconds.
 *
 * Every record is validated by the collection's schema when read, so a file
 * written by an older agent or edited by hand is a clear error naming the
 * file, not a crash somewhere deeper.
 */
import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { ZodType } from "zod";
import { NetclaimError } from "../common/errors.ts";

export type StoreErrorCode = "STORE_IO" | "STORE_CORRUPT" | "STORE_KEY";

export class StoreError extends NetclaimError<StoreErrorCode> {
  readonly file: string;

  constructor(code: StoreErrorCode, file: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.file = file;
  }
}

const RECORD_SUFFIX = ".json";
const TEMP_MARKER = ".tmp-";
const COLLECTION_NAME = /^[a-z][a-z0-9-]{0,62}$/;

export class StateStore {
  readonly #dir: string;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /** Opens (creating if needed) the store rooted at `dir`. */
  static async open(dir: string): Promise<StateStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new StateStore(dir);
  }

  get dir(): string {
    return this.#dir;
  }

  /** A collection of records of one shape; its directory is created on first use. */
  collection<T>(name: string, schema: ZodType<T>): Collection<T> {
    if (!COLLECTION_NAME.test(name)) {
      throw new RangeError(`Cannot use collection name "${name}": use lowercase letters, digits and "-"`);
    }
    return new Collection(join(this.#dir, name), schema);
  }
}

export class Collection<T> {
  readonly #dir: string;
  readonly #schema: ZodType<T>;
  #ready: Promise<void> | undefined;

  constructor(dir: string, schema: ZodType<T>) {
    this.#dir = dir;
    this.#schema = schema;
  }

  /** The record under `key`, or undefined when there is none. */
  async get(key: string): Promise<T | undefined> {
    const file = this.#file(key);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new StoreError("STORE_IO", file, `Cannot read state record ${file}: ${(err as Error).message}`, { cause: err });
    }
    return this.#decode(file, text);
  }

  /** Every record, sorted by key, so callers iterate deterministically. */
  async list(): Promise<[key: string, value: T][]> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch (err) {
      if (isNotFound(err)) return [];
      throw new StoreError("STORE_IO", this.#dir, `Cannot list state directory ${this.#dir}: ${(err as Error).message}`, { cause: err });
    }
    const keys = names
      .filter((n) => n.endsWith(RECORD_SUFFIX) && !n.includes(TEMP_MARKER))
      .map((n) => decodeURIComponent(n.slice(0, -RECORD_SUFFIX.length)))
      .sort();
    const out: [string, T][] = [];
    for (const key of keys) {
      const value = await this.get(key);
      // A concurrent delete between readdir and read is not an error.
      if (value !== undefined) out.push([key, value]);
    }
    return out;
  }

  /** Durably replaces the record under `key`; resolves once it is on disk. */
  async put(key: string, value: T): Promise<void> {
    const parsed = this.#schema.safeParse(value);
    if (!parsed.success) {
      throw new TypeError(`Cannot store record "${key}" in ${this.#dir}: ${parsed.error.message}`);
    }
    await this.#ensureDir();
    const file = this.#file(key);
    const temp = `${file}${TEMP_MARKER}${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      const handle = await open(temp, "wx", 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(parsed.data)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, file);
      await this.#syncDir();
    } catch (err) {
      await rm(temp, { force: true });
      throw new StoreError("STORE_IO", file, `Cannot write state record ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Durably removes the record under `key`; removing a missing record succeeds. */
  async delete(key: string): Promise<void> {
    const file = this.#file(key);
    try {
      await rm(file, { force: true });
      await this.#syncDir();
    } catch (err) {
      if (isNotFound(err)) return;
      throw new StoreError("STORE_IO", file, `Cannot delete state record ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Removes temporary files a crashed writer left behind. Only call it when no
   * other writer can be mid-write (at agent start, under the agent lock).
   */
  async removeStaleTemporaries(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch (err) {
      if (isNotFound(err)) return 0;
      throw err;
    }
    const stale = names.filter((n) => n.includes(TEMP_MARKER));
    await Promise.all(stale.map((n) => rm(join(this.#dir, n), { force: true })));
    return stale.length;
  }

  #file(key: string): string {
    if (key === "" || key.length > 200) {
      throw new StoreError("STORE_KEY", this.#dir, `Cannot use state key "${key.slice(0, 40)}": it must be 1 to 200 characters`);
    }
    return join(this.#dir, `${encodeURIComponent(key)}${RECORD_SUFFIX}`);
  }

  #decode(file: string, text: string): T {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new StoreError("STORE_CORRUPT", file, `Cannot parse state record ${file}: ${(err as Error).message}`, { cause: err });
    }
    const parsed = this.#schema.safeParse(json);
    if (!parsed.success) {
      throw new StoreError("STORE_CORRUPT", file, `Cannot use state record ${file}: ${parsed.error.message}`);
    }
    return parsed.data;
  }

  async #ensureDir(): Promise<void> {
    this.#ready ??= mkdir(this.#dir, { recursive: true, mode: 0o700 }).then(() => this.#syncParent());
    await this.#ready;
  }

  async #syncParent(): Promise<void> {
    await syncDirectory(join(this.#dir, ".."));
  }

  async #syncDir(): Promise<void> {
    await syncDirectory(this.#dir);
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isNotFound(err: unknown): boolean {
  return typeof err === "object" && err !== null && "code" in err && err.code === "ENOENT";
}
