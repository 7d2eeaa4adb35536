/**
 * Keeps this node's ResourceSlices equal to the inventory, continuously: the
 * kubelet deletes a node's slices when it starts and 30 s after a driver
 * disappears, and anyone with access may edit them. The publisher watches
 * only its own slices (field selector spec.nodeName + spec.driver) and
 * reconciles on every inventory change and every slice event. Reconciles are
 * serialised and coalesced; a failed one is retried with jittered backoff.
 * At steady state it writes nothing: the only requests are the watch's
 * periodic reconnects.
 */
import { planSlices, type SlicePlan } from "./plan.ts";
import { MAX_DEVICES_PER_SLICE, MAX_DEVICES_PER_SLICE_WITH_TAINTS, toApiDevice, type ApiDeviceOptions, type PoolIdentity } from "./desired.ts";
import type { DeviceReport, InventorySnapshot } from "../inventory/index.ts";
import {
  Informer,
  RESOURCE_SLICES_PATH,
  createResourceSlice,
  deleteResourceSlice,
  getNode,
  isConflict,
  isNotFound,
  listResourceSlices,
  ownSlicesFieldSelector,
  replaceResourceSlice,
  type Device,
  type DeviceTaint,
  type KubeClient,
  type ResourceSlice,
} from "../kube/index.ts";
import { NetclaimError } from "../common/errors.ts";

/** What the publisher needs from the inventory. */
export interface DeviceSource {
  current(): InventorySnapshot;
  subscribe(listener: (snapshot: InventorySnapshot) => void): () => void;
  /**
   * Changes whenever what current() publishes changes (Inventory's does). With
   * it, a new snapshot that publishes the same is not planned again; without,
   * every snapshot is.
   */
  readonly publishedRevision?: number;
}

/** The taints of published devices (the agent's device-taints.ts). */
export interface DeviceTaintSource {
  /** By DRA device name; a device absent has none. */
  current(): ReadonlyMap<string, readonly DeviceTaint[]>;
  subscribe(listener: () => void): () => void;
}

export class SlicePublishError extends NetclaimError<"SLICE_NODE" | "SLICE_WRITE" | "SLICE_TAINTS_DROPPED" | "SLICE_SHARING_DROPPED"> {}

export interface SlicePublisherOptions {
  client: KubeClient;
  driverName: string;
  nodeName: string;
  devices: DeviceSource;
  /** Absent: no device is ever tainted, and slices take up to 128 devices instead of 64. */
  taints?: DeviceTaintSource | undefined;
  /** Field manager recorded on writes. */
  fieldManager?: string;
  onError?: (err: unknown) => void;
  /** Called after each reconcile that wrote something. */
  onPublished?: (plan: SlicePlan) => void;
  backoff?: { initialMs: number; maxMs: number };
  /** Watch duration before the server ends it; one request per period at steady state. */
  watchTimeoutSeconds?: number;
}

export class SlicePublisher {
  readonly #options: SlicePublisherOptions;
  readonly #informer: Informer<ResourceSlice>;
  #pool: PoolIdentity | undefined;
  #unsubscribe: (() => void)[] = [];
  #running: Promise<void> | undefined;
  #dirty = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryDelay: number;
  #stopped = false;
  #reconciles = 0;
  #publishedOnce = false;
  /** The API server threw away the taints of a write (its DRADeviceTaints gate is off): publish none. */
  #taintsDropped = false;
  /** The API server threw away allowMultipleAllocations (its DRAConsumableCapacity gate is off): publish shared parents whole. */
  #sharingDropped = false;
  /** Changes seen of the slices, for #inputs. */
  #slicesChanged = 0;
  /** What the last reconcile that found nothing to write planned from (#inputs); undefined: plan again. */
  #settledOn: string | undefined;

  constructor(options: SlicePublisherOptions) {
    this.#options = options;
    this.#retryDelay = options.backoff?.initialMs ?? 200;
    this.#informer = new Informer<ResourceSlice>(options.client, {
      path: RESOURCE_SLICES_PATH,
      fieldSelector: ownSlicesFieldSelector(options.nodeName, options.driverName),
      ...(options.watchTimeoutSeconds !== undefined ? { timeoutSeconds: options.watchTimeoutSeconds } : {}),
      onChange: () => {
        this.#slicesChanged++;
        this.#kick();
      },
      ...(options.onError !== undefined ? { onError: options.onError } : {}),
    });
  }

  /** Looks up the Node (retrying until it exists), then publishes and keeps publishing. */
  async start(): Promise<void> {
    this.#stopped = false;
    const node = await this.#nodeIdentity();
    if (this.#isStopped()) return;
    this.#pool = { driverName: this.#options.driverName, nodeName: this.#options.nodeName, nodeUID: node };
    const kick = (): void => {
      this.#kick();
    };
    this.#unsubscribe = [this.#options.devices.subscribe(kick), ...(this.#options.taints === undefined ? [] : [this.#options.taints.subscribe(kick)])];
    this.#informer.start();
    await this.#informer.synced();
    await this.#reconcileNow();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    clearTimeout(this.#retryTimer);
    await this.#informer.stop();
    await this.#running;
  }

  /** The slices as last observed. */
  slices(): ResourceSlice[] {
    return this.#informer.list();
  }

  /** Reconciles completed (observability and tests). */
  get reconciles(): number {
    return this.#reconciles;
  }

  /** Whether the slices have matched the inventory at least once since start (readiness). */
  get publishedOnce(): boolean {
    return this.#publishedOnce;
  }

  /** Runs a reconcile now and waits for it (and any it coalesced). */
  async #reconcileNow(): Promise<void> {
    this.#kick();
    while (this.#running !== undefined) await this.#running;
  }

  #kick(): void {
    if (this.#stopped || this.#pool === undefined) return;
    if (this.#running !== undefined) {
      this.#dirty = true;
      return;
    }
    this.#running = this.#reconcileLoop().finally(() => {
      this.#running = undefined;
    });
  }

  async #reconcileLoop(): Promise<void> {
    do {
      this.#dirty = false;
      try {
        await this.#reconcile();
        this.#retryDelay = this.#options.backoff?.initialMs ?? 200;
      } catch (err) {
        this.#options.onError?.(err);
        this.#scheduleRetry();
        return;
      }
    } while (this.#isDirty() && !this.#isStopped());
  }

  /** The server keeps a field of ours no more: the slices are written again without it. */
  #featureDropped(code: "SLICE_TAINTS_DROPPED" | "SLICE_SHARING_DROPPED", message: string): void {
    this.#dirty = true;
    this.#options.onError?.(new SlicePublishError(code, message));
  }

  #scheduleRetry(): void {
    if (this.#stopped || this.#retryTimer !== undefined) return;
    const max = this.#options.backoff?.maxMs ?? 30_000;
    const delay = this.#retryDelay / 2 + (Math.random() * this.#retryDelay) / 2;
    this.#retryDelay = Math.min(this.#retryDelay * 2, max);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#kick();
    }, delay);
  }

  /**
   * What a plan is made from, as far as it can change: undefined when the
   * device source cannot tell its changes. Equal to #settledOn, the slices
   * are known to match already, and planning them again (every device
   * converted and compared, some milliseconds for hundreds) is skipped.
   */
  #inputs(taints: ReadonlyMap<string, readonly DeviceTaint[]> | undefined): string | undefined {
    const revision = this.#options.devices.publishedRevision;
    if (revision === undefined) return undefined;
    // The taints' source tells of every change of device health, most of which taint nothing:
    // what counts is the taints themselves (few: only unhealthy devices have one).
    return JSON.stringify([revision, this.#slicesChanged, this.#taintsDropped, this.#sharingDropped, taints === undefined ? [] : [...taints]]);
  }

  async #reconcile(): Promise<void> {
    const pool = this.#pool;
    if (pool === undefined) return;
    const taints = this.#taintsDropped ? undefined : this.#options.taints?.current();
    const inputs = this.#inputs(taints);
    if (inputs !== undefined && inputs === this.#settledOn) {
      this.#reconciles++;
      return;
    }
    this.#settledOn = undefined;
    const devices = publishedApiDevices(this.#options.devices.current().reports, pool.driverName, taints, {
      consumableCapacity: !this.#sharingDropped,
    });
    const plan = planSlices(pool, devices, this.#informer.list(), this.#options.taints === undefined ? MAX_DEVICES_PER_SLICE : MAX_DEVICES_PER_SLICE_WITH_TAINTS);
    this.#reconciles++;
    if (plan.writes.length === 0 && plan.deletes.length === 0) {
      this.#publishedOnce = true;
      this.#settledOn = inputs;
      return;
    }
    const fieldManager = this.#options.fieldManager ?? "netclaim";
    const client = this.#options.client;
    for (const slice of plan.writes) {
      const name = slice.metadata.name ?? "";
      try {
        const written =
          slice.metadata.resourceVersion === undefined
            ? await createResourceSlice(client, slice, fieldManager)
            : await replaceResourceSlice(client, slice, fieldManager);
        this.#informer.observe(written);
        // Writing what the server drops again would loop forever: go on without it, and say so once.
        if (!this.#taintsDropped && dropped(slice, written, (d) => (d.taints?.length ?? 0) > 0)) {
          this.#taintsDropped = true;
          this.#featureDropped(
            "SLICE_TAINTS_DROPPED",
            `The API server dropped the device taints written to ResourceSlice ${name}: its DRADeviceTaints feature gate is off. Publishing devices without taints from now on (device health still reaches the kubelet); set deviceTaints.mode to auto or off`,
          );
        }
        if (!this.#sharingDropped && dropped(slice, written, (d) => d.allowMultipleAllocations === true)) {
          this.#sharingDropped = true;
          this.#featureDropped(
            "SLICE_SHARING_DROPPED",
            `The API server dropped allowMultipleAllocations from the shared parents written to ResourceSlice ${name}: its DRAConsumableCapacity feature gate is off (Kubernetes 1.34 and 1.35 unless enabled). Publishing shared parents as whole devices from now on, one claim each; enable the gate on the API server and scheduler, then restart the agent`,
          );
        }
      } catch (err) {
        // Someone else wrote or deleted it since we looked. The watch may have told us already,
        // before the answer to an earlier write of ours put an older copy back into the cache:
        // read them again, then replan after the backoff.
        if (isConflict(err) || isNotFound(err)) {
          await this.#reread();
          this.#scheduleRetry();
          return;
        }
        throw new SlicePublishError("SLICE_WRITE", `Cannot write ResourceSlice ${name} of pool ${pool.nodeName}`, { cause: err });
      }
    }
    for (const stale of plan.deletes) {
      try {
        await deleteResourceSlice(client, stale.name, stale.resourceVersion);
        this.#informer.forget(stale.name);
      } catch (err) {
        if (isNotFound(err)) continue;
        if (isConflict(err)) {
          await this.#reread();
          this.#scheduleRetry();
          return;
        }
        throw new SlicePublishError("SLICE_WRITE", `Cannot delete ResourceSlice ${stale.name} of pool ${pool.nodeName}`, { cause: err });
      }
    }
    this.#publishedOnce = true;
    this.#options.onPublished?.(plan);
  }

  /** Our slices as the server has them now, into the cache; a failure leaves the cache to the watch. */
  async #reread(): Promise<void> {
    let current: ResourceSlice[];
    try {
      current = await listResourceSlices(this.#options.client, ownSlicesFieldSelector(this.#options.nodeName, this.#options.driverName));
    } catch (err) {
      this.#options.onError?.(err);
      return;
    }
    const names = new Set(current.map((s) => s.metadata.name));
    for (const cached of this.#informer.list()) if (!names.has(cached.metadata.name)) this.#informer.forget(cached.metadata.name ?? "");
    for (const slice of current) this.#informer.observe(slice);
  }

  /** Read through methods: stop() and #kick() flip these while a reconcile awaits. */
  #isStopped(): boolean {
    return this.#stopped;
  }

  #isDirty(): boolean {
    return this.#dirty;
  }

  async #nodeIdentity(): Promise<string> {
    let delay = this.#options.backoff?.initialMs ?? 200;
    const max = this.#options.backoff?.maxMs ?? 30_000;
    for (;;) {
      try {
        const node = await getNode(this.#options.client, this.#options.nodeName);
        const uid = node.metadata.uid;
        if (uid === undefined) throw new SlicePublishError("SLICE_NODE", `Node ${this.#options.nodeName} has no uid`);
        return uid;
      } catch (err) {
        if (this.#stopped) throw err;
        this.#options.onError?.(err);
        await new Promise((resolve) => setTimeout(resolve, delay / 2 + (Math.random() * delay) / 2));
        delay = Math.min(delay * 2, max);
      }
    }
  }
}

/** Whether a write sent devices with `field` and the server kept it on none: its feature gate is off. */
function dropped(sent: ResourceSlice, written: ResourceSlice, field: (device: Device) => boolean): boolean {
  const has = (slice: ResourceSlice): boolean => (slice.spec.devices ?? []).some(field);
  return has(sent) && !has(written);
}

export function publishedApiDevices(
  reports: readonly DeviceReport[],
  driverName: string,
  taints: ReadonlyMap<string, readonly DeviceTaint[]> = new Map(),
  options?: ApiDeviceOptions,
): ReturnType<typeof toApiDevice>[] {
  return reports.filter((r) => r.publish).map((r) => toApiDevice(r, driverName, taints.get(r.name), options));
}
