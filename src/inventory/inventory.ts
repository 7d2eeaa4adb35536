/**
 * The live inventory: scans on start, on link change events, on explicit
 * requests and periodically, and tells subscribers when what would be
 * published changed. Bursts of triggers are coalesced: a rescan waits
 * `debounceMs` after the first trigger and at most one scan runs at a time;
 * triggers during a scan cause exactly one more.
 *
 * A scan that link events alone asked for reads only the links they named
 * and links it has not seen before (discover.ts, EarlierDiscovery): every
 * pod start and stop changes a link or two on the host (its veth, a device
 * moved), and reading every device's sysfs for each cost a node with 260
 * links about 170 ms of the agent's CPU. The start, every resync, an
 * overflow of events and requestRescan() without links read everything.
 */
import { isDeepStrictEqual } from "node:util";
import type { NetDevice } from "./device.ts";
import type { LinkKindSource } from "./link-kinds.ts";
import type { DevicePolicy } from "./policy.ts";
import { carryAttached, scanInventory, type DeviceReport, type InventorySnapshot } from "./scan.ts";
import { SysfsRoot } from "./sysfs.ts";
import { errorMessage } from "../common/errors.ts";

/**
 * Something that reports link changes (netlink RTM_NEWLINK/DELLINK, or
 * a test double): which links changed, not how; the scan reads the rest.
 */
export interface LinkEventSource {
  /** `onChange` gets the names of the links that changed, or nothing when any may have (events were lost). */
  start(onChange: (links?: readonly string[]) => void): void;
  stop(): void;
}

/** Which devices are inside pods; the engine implements it. */
export interface AttachedDevices {
  /** DRA device names currently attached to a pod. */
  attachedDevices(): ReadonlySet<string>;
  /**
   * Reads again which devices are in pods, before a scan: during a rolling update another
   * agent attaches devices too, and a device it moved must not look gone from the host.
   */
  refreshAttached?(): Promise<void>;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

export interface InventoryOptions {
  /** Root of the sysfs/procfs tree; "/" on a node. */
  root?: string;
  policy: DevicePolicy;
  /**
   * The kernel's link kinds, which the guard needs to tell a veth or a dummy
   * from a NIC: netlinkLinkKinds() when root is "/". Without it, kinds come
   * from what sysfs shows (fixture trees, another root).
   */
  linkKinds?: LinkKindSource;
  linkEvents?: LinkEventSource;
  attached?: AttachedDevices;
  /** Delay from the first trigger to the scan, so a burst costs one scan. */
  debounceMs?: number;
  /** Full rescan period, for changes no event reports (speed, NUMA, VF counts). */
  resyncMs?: number;
  timers?: Timers;
  /** Scan failures (the agent logs them; the last good snapshot stays). */
  onError?: (err: unknown) => void;
  /**
   * Resolves when a triggered scan may run: the agent lets pod starts under way finish
   * first (agent/attach-activity.ts). Scans run at once without it.
   */
  quiet?: () => Promise<void>;
  /**
   * The reports of a previous run. Devices inside pods are invisible to a scan,
   * so after an agent restart they keep their published attributes only if
   * the agent kept its last snapshot.
   */
  previous?: readonly DeviceReport[];
}

export type SnapshotListener = (snapshot: InventorySnapshot) => void;

export class Inventory {
  readonly #sysfs: SysfsRoot;
  readonly #options: Required<Omit<InventoryOptions, "linkKinds" | "linkEvents" | "attached" | "root" | "previous">> & {
    linkKinds: LinkKindSource | undefined;
    linkEvents: LinkEventSource | undefined;
    attached: AttachedDevices | undefined;
  };
  readonly #listeners = new Set<SnapshotListener>();
  #snapshot: InventorySnapshot = { reports: [] };
  /** The devices the last scan found on the host. */
  #discovered: readonly NetDevice[] = [];
  /** The links named as changed since the last scan began; "all" when everything is to be read. */
  #changed: Set<string> | "all" = "all";
  /** The last published report of every device seen, for devices that then moved into pods. */
  readonly #known = new Map<string, DeviceReport>();
  #knownRevision = 0;
  #publishedRevision = 0;
  /** The names of the devices the snapshot publishes, as of the last change of publishedRevision. */
  #publishedNames = "";
  #timer: unknown;
  #resyncTimer: unknown;
  #scanning: Promise<void> | undefined;
  #again = false;
  #running = false;
  #scans = 0;

  constructor(options: InventoryOptions) {
    this.#sysfs = new SysfsRoot(options.root ?? "/");
    for (const report of options.previous ?? []) if (report.publish) this.#known.set(report.name, report);
    this.#options = {
      policy: options.policy,
      linkKinds: options.linkKinds,
      linkEvents: options.linkEvents,
      attached: options.attached,
      debounceMs: options.debounceMs ?? 100,
      resyncMs: options.resyncMs ?? 60_000,
      timers: options.timers ?? realTimers,
      onError: options.onError ?? (() => undefined),
      quiet: options.quiet ?? (() => Promise.resolve()),
    };
  }

  /** Scans once (errors propagate: a node without sysfs cannot run the agent), then watches. */
  async start(): Promise<void> {
    this.#running = true;
    await this.#scan();
    this.#options.linkEvents?.start((links) => {
      this.requestRescan(links);
    });
    this.#scheduleResync();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#options.linkEvents?.stop();
    this.#options.timers.clearTimeout(this.#timer);
    this.#options.timers.clearTimeout(this.#resyncTimer);
    this.#timer = undefined;
    await this.#scanning;
  }

  /** The latest snapshot. */
  current(): InventorySnapshot {
    return this.#snapshot;
  }

  /** The last published report of every device seen (what the agent saves across restarts). */
  known(): DeviceReport[] {
    return [...this.#known.values()];
  }

  /**
   * Counts the changes of known(). Most new snapshots leave it as it was (a
   * device moved into a pod or back changes only its `attached`), and a
   * caller that saves it need not write it again for those.
   */
  get knownRevision(): number {
    return this.#knownRevision;
  }

  /**
   * Counts the changes of what the snapshot publishes: the published devices'
   * names and reports, but not whether they are in pods (a device that moves
   * into a pod stays published as it was), so the slice publisher need not
   * plan its slices again for a pod that starts or stops.
   */
  get publishedRevision(): number {
    return this.#publishedRevision;
  }

  /** Number of completed scans (observability and tests). */
  get scans(): number {
    return this.#scans;
  }

  /** Called with each snapshot that differs from the previous one. */
  subscribe(listener: SnapshotListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Asks for a rescan soon; cheap and idempotent, so call it on any hint of
   * change. With `links`, only those changed (and [] none: what else a scan
   * takes in, such as which devices are in pods, did); without, anything may have.
   */
  requestRescan(links?: Iterable<string>): void {
    if (links === undefined) this.#changed = "all";
    else if (this.#changed !== "all") for (const link of links) this.#changed.add(link);
    if (!this.#running || this.#timer !== undefined) return;
    this.#timer = this.#options.timers.setTimeout(() => {
      this.#timer = undefined;
      void this.#options.quiet().then(() => {
        if (this.#running) this.#runScan();
      });
    }, this.#options.debounceMs);
  }

  #scheduleResync(): void {
    if (!this.#running) return;
    this.#resyncTimer = this.#options.timers.setTimeout(() => {
      this.requestRescan();
      this.#scheduleResync();
    }, this.#options.resyncMs);
  }

  #runScan(): void {
    if (this.#scanning !== undefined) {
      this.#again = true;
      return;
    }
    // Owned by #scanning, which stop() awaits; failures go to onError.
    void this.#scan()
      .catch((err: unknown) => {
        this.#options.onError(err);
      })
      .finally(() => {
        if (this.#again) {
          this.#again = false;
          // What the triggers since named is already pending.
          this.requestRescan([]);
        }
      });
  }

  async #scan(): Promise<void> {
    const changed = this.#changed;
    this.#changed = new Set();
    const run = (async () => {
      const { linkKinds } = this.#options;
      const earlier = changed === "all" ? undefined : { devices: this.#discovered, changed };
      // A device that comes back from a pod while the links are read may be read as gone from
      // the host and, by the time the attached devices are read again, as out of its pod too:
      // counted as attached if it was before the reads or after them, it stays published.
      const attachedBefore = [...(this.#options.attached?.attachedDevices() ?? [])];
      const [scanned] = await Promise.all([
        scanInventory(this.#sysfs, this.#options.policy, { ...(linkKinds !== undefined && { linkKinds }), ...(earlier !== undefined && { earlier }) }),
        this.#options.attached?.refreshAttached?.().catch((err: unknown) => {
          this.#options.onError(new Error(`cannot read which devices are in pods; using what was known: ${errorMessage(err)}`, { cause: err }));
        }),
      ]);
      this.#discovered = scanned.reports.map((r) => r.device);
      const attached = new Set([...attachedBefore, ...(this.#options.attached?.attachedDevices() ?? [])]);
      const published = scanned.reports.filter((r) => r.publish);
      const knownBefore = new Map(this.#known);
      for (const report of published) this.#known.set(report.name, report);
      const next: InventorySnapshot = { reports: carryAttached(scanned.reports, [...this.#known.values()], attached) };
      this.#scans++;
      // An unchanged snapshot has every published report as it was, so known() too.
      if (isDeepStrictEqual(next, this.#snapshot)) return;
      const knownChanged = published.some((r) => !isDeepStrictEqual(knownBefore.get(r.name), r));
      if (knownChanged) this.#knownRevision++;
      // Every published report of the snapshot is a known one (a device in a pod: a copy
      // marked attached), so unchanged known reports under the same names publish the same.
      const publishedNames = next.reports.filter((r) => r.publish).map((r) => r.name).join("\n");
      if (knownChanged || publishedNames !== this.#publishedNames) {
        this.#publishedRevision++;
        this.#publishedNames = publishedNames;
      }
      this.#snapshot = next;
      for (const listener of this.#listeners) {
        try {
          listener(next);
        } catch (err) {
          this.#options.onError(new Error(`inventory listener failed: ${errorMessage(err)}`, { cause: err }));
        }
      }
    })();
    this.#scanning = run;
    try {
      await run;
    } catch (err) {
      // What it was to read is read by the next scan, with everything else.
      this.#changed = "all";
      throw err;
    } finally {
      this.#scanning = undefined;
    }
  }
}
