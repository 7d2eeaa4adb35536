/**
 * Crash-safe state on disk: named collections of JSON records, one file per
 * record. A write goes to a temporary file and is renamed over the old file,
 * so after `kill -9` at any point a reader sees either the old record or the
 * new one, never a mix.
 *
 * A store says what its records must outlive. "reboot" (the default) also
 * fsyncs the file and the directory, so a power cut keeps them too: prepared
 * claims and IPAM leases, which the kubelet asks about again after a reboot.
 * "restart" skips the fsyncs: the page cache outlives the agent's process,
 * and the records are facts about this boot only (which device sits in which
 * pod's namespace), so a reboot must forget them: the store notes the
 * kernel's boot ID and starts empty when it changes, even where its
 * directory is not a tmpfs. It belongs on a tmpfs (/run) all the same: on a
 * disk even an unsynced rename starts writeback, about half a millisecond
 * on the pod start-up path.
 *
 * Reads always go to disk: two agent instances overlap during a DaemonSet
 * rolling update and either may unprepare what the other prepared, so no
 * process may trust a cached copy. Records are small and in the page cache,
 * so reads are synchronous: a read costs a few microseconds, and the thread
 * pool's round trip an asynchronous one takes costs about a hundred (the
 * NRI handlers read every prepared claim on each pod start: with 110 claims,
 * 11 ms against 0.5).
 *
 * Every record is validated by the collection's schema when read, so a file
 * written by an older agent or edited by hand is a clear error naming the
 * file, not a crash somewhere deeper. A file read again with the same text
 * is not validated again: its record is the one decoded before, frozen, since
 * every reader shares it.
 */
import { readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ZodType } from "zod";
import { deepFreeze } from "../common/deep-freeze.ts";
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

/** What a store's records outlive: see the top of this file. */
export type Durability = "reboot" | "restart";

export class StateStore {
  readonly #dir: string;
  readonly #durability: Durability;

  private constructor(dir: string, durability: Durability) {
    this.#dir = dir;
    this.#durability = durability;
  }

  /**
   * Opens (creating if needed) the store rooted at `dir`. A "restart" store
   * written during an earlier boot is emptied first.
   */
  static async open(dir: string, options: { durability?: Durability; bootIdFile?: string } = {}): Promise<StateStore> {
    const durability = options.durability ?? "reboot";
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (durability === "restart") await forgetEarlierBoots(dir, options.bootIdFile ?? "/proc/sys/kernel/random/boot_id");
    return new StateStore(dir, durability);
  }

  get dir(): string {
    return this.#dir;
  }

  /**
   * A collection of records of one shape; its directory is created on first
   * use. Records are validated when read and, unless `trustWrites`, when
   * written. A writer that builds its records only from values the same
   * schemas have just parsed may trust itself: validating again catches
   * nothing its types do not, and costs close to a millisecond when the
   * code is cold, as it is at a pod's start.
   */
  collection<T>(name: string, schema: ZodType<T>, options: { trustWrites?: boolean } = {}): Collection<T> {
    if (!COLLECTION_NAME.test(name)) {
      throw new RangeError(`Cannot use collection name "${name}": use lowercase letters, digits and "-"`);
    }
    return new Collection(join(this.#dir, name), schema, this.#durability, options.trustWrites ?? false);
  }
}

export class Collection<T> {
  readonly #dir: string;
  readonly #schema: ZodType<T>;
  readonly #io: RecordIo;
  readonly #trustWrites: boolean;
  /** The record last decoded from each file, with the text it came from. */
  readonly #decoded = new Map<string, { text: string; record: T }>();
  #ready: Promise<void> | undefined;

  constructor(dir: string, schema: ZodType<T>, durability: Durability, trustWrites: boolean) {
    this.#dir = dir;
    this.#schema = schema;
    this.#io = durability === "reboot" ? durableIo : pageCacheIo;
    this.#trustWrites = trustWrites;
  }

  /** The record under `key`, or undefined when there is none. */
  async get(key: string): Promise<T | undefined> {
    const file = this.#file(key);
    let text: string | undefined;
    try {
      text = await this.#io.read(file);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new StoreError("STORE_IO", file, `Cannot read state record ${file}: ${(err as Error).message}`, { cause: err });
    }
    if (text === undefined) {
      this.#decoded.delete(key);
      return undefined;
    }
    const known = this.#decoded.get(key);
    if (known?.text === text) return known.record;
    const record = deepFreeze(this.#decode(file, text));
    this.#decoded.set(key, { text, record });
    return record;
  }

  /** Every record's key, sorted, without reading the records. */
  async keys(): Promise<string[]> {
    let names: string[];
    try {
      names = await this.#io.names(this.#dir);
    } catch (err) {
      if (isNotFound(err)) return [];
      throw new StoreError("STORE_IO", this.#dir, `Cannot list state directory ${this.#dir}: ${(err as Error).message}`, { cause: err });
    }
    return names
      .filter((n) => n.endsWith(RECORD_SUFFIX) && !n.includes(TEMP_MARKER))
      .map((n) => decodeURIComponent(n.slice(0, -RECORD_SUFFIX.length)))
      .sort();
  }

  /** Every record, sorted by key, so callers iterate deterministically. */
  async list(): Promise<[key: string, value: T][]> {
    const keys = await this.keys();
    // Records another process removed leave nothing decoded behind.
    const listed = new Set(keys);
    for (const key of this.#decoded.keys()) if (!listed.has(key)) this.#decoded.delete(key);
    // Read at once, not one after another: the NRI handlers list the
    // prepared claims on every pod start.
    const values = await Promise.all(keys.map((key) => this.get(key)));
    // A concurrent delete between readdir and read is not an error.
    return keys.flatMap((key, i) => {
      const value = values[i];
      return value === undefined ? [] : [[key, value] as [string, T]];
    });
  }

  /** Replaces the record under `key`; resolves once it is as durable as the store promises. */
  async put(key: string, value: T): Promise<void> {
    let record = value;
    if (!this.#trustWrites) {
      const parsed = this.#schema.safeParse(value);
      if (!parsed.success) {
        throw new TypeError(`Cannot store record "${key}" in ${this.#dir}: ${parsed.error.message}`);
      }
      record = parsed.data;
    }
    await this.#ensureDir();
    const file = this.#file(key);
    const temp = `${file}${TEMP_MARKER}${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await this.#io.replace(this.#dir, file, temp, `${JSON.stringify(record)}\n`);
    } catch (err) {
      await rm(temp, { force: true });
      throw new StoreError("STORE_IO", file, `Cannot write state record ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Removes the record under `key`; removing a missing record succeeds. */
  async delete(key: string): Promise<void> {
    const file = this.#file(key);
    this.#decoded.delete(key);
    try {
      await this.#io.remove(this.#dir, file);
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
    this.#ready ??= mkdir(this.#dir, { recursive: true, mode: 0o700 }).then(() => this.#io.syncDirectory(join(this.#dir, "..")));
    await this.#ready;
  }
}

/** How a collection's files are read and written (synchronously or not); one per durability. */
interface RecordIo {
  /** The file's text; undefined (or a not-found error) when there is none. */
  read(file: string): string | undefined | Promise<string | undefined>;
  names(dir: string): string[] | Promise<string[]>;
  /** Writes `text` to `temp`, then renames it over `file` in `dir`. */
  replace(dir: string, file: string, temp: string, text: string): void | Promise<void>;
  remove(dir: string, file: string): void | Promise<void>;
  syncDirectory(dir: string): void | Promise<void>;
}

/** Reads, the same for every durability (see the top of this file). */
const syncReads: Pick<RecordIo, "read" | "names"> = {
  // Most lookups are for records that do not exist yet (a fresh attach):
  // a stat that returns nothing is half the cost of a read that throws.
  read: (file) => (statSync(file, { throwIfNoEntry: false }) === undefined ? undefined : readFileSync(file, "utf8")),
  names: (dir) => readdirSync(dir),
};

/** fsync of the file and of its directory: the record outlives a power cut. */
const durableIo: RecordIo = {
  ...syncReads,
  async replace(dir, file, temp, text) {
    const handle = await open(temp, "wx", 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
    await durableIo.syncDirectory(dir);
  },
  async remove(dir, file) {
    await rm(file, { force: true });
    await durableIo.syncDirectory(dir);
  },
  async syncDirectory(dir) {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/**
 * The page cache only, and synchronous: without an fsync a write costs tens
 * of microseconds, less than the thread-pool round trips of the async calls
 * it would otherwise take (four per write).
 */
const pageCacheIo: RecordIo = {
  ...syncReads,
  replace(_dir, file, temp, text) {
    writeFileSync(temp, text, { flag: "wx", mode: 0o600 });
    renameSync(temp, file);
  },
  remove(_dir, file) {
    rmSync(file, { force: true });
  },
  syncDirectory() {},
};

const BOOT_ID_FILE = "boot-id";

/** Empties `dir` when the boot ID recorded in it is not the running kernel's. */
async function forgetEarlierBoots(dir: string, bootIdFile: string): Promise<void> {
  const current = (await readFile(bootIdFile, "utf8")).trim();
  const recordedFile = join(dir, BOOT_ID_FILE);
  let recorded: string | undefined;
  try {
    recorded = (await readFile(recordedFile, "utf8")).trim();
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (recorded === current) return;
  if (recorded !== undefined) {
    for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true });
  }
  await writeFile(recordedFile, `${current}\n`, { mode: 0o600 });
}

function isNotFound(err: unknown): boolean {
  return typeof err === "object" && err !== null && "code" in err && err.code === "ENOENT";
}
