/**
 * What the DRA layer needs to know about a claim, and the two interfaces it
 * depends on: where claim content comes from (`ClaimSource`, the API server
 * in the agent) and what preparing means (`ClaimPreparer`, the network
 * semantics). The DRA layer itself only sequences, persists and answers.
 */

/** The identity the kubelet sends; it is all unprepare ever gets. */
export interface ClaimRef {
  readonly namespace: string;
  readonly uid: string;
  readonly name: string;
}

/** One entry of `status.allocation.devices.results`. */
export interface AllocationResult {
  /** The request name, `req` or `req/subrequest`. */
  readonly request: string;
  readonly driver: string;
  readonly pool: string;
  readonly device: string;
  readonly shareID?: string | undefined;
  readonly adminAccess?: boolean | undefined;
}

/** One entry of `status.allocation.devices.config` with an opaque driver config. */
export interface AllocationConfig {
  readonly source: "FromClass" | "FromClaim";
  /** Requests it applies to; empty means all. */
  readonly requests: readonly string[];
  readonly driver: string;
  readonly parameters: JsonValue;
}

/** One entry of `status.reservedFor`: who may use the claim (normally one pod). */
export interface ClaimConsumer {
  readonly resource: string;
  readonly apiGroup?: string | undefined;
  readonly name: string;
  readonly uid: string;
}

export interface ClaimContent {
  /** The claim as read from its source; its UID may differ from the request's. */
  readonly ref: ClaimRef;
  /** Its resource.kubernetes.io/pod-claim-name annotation: the pod's name for a claim made from its template. */
  readonly podClaimName?: string | undefined;
  /** Absent until the scheduler allocated the claim. */
  readonly allocation?: {
    readonly results: readonly AllocationResult[];
    readonly config: readonly AllocationConfig[];
  } | undefined;
  /** Absent means nobody yet. */
  readonly reservedFor?: readonly ClaimConsumer[] | undefined;
}

export interface ClaimSource {
  /** Reads the claim named by `ref`; rejects when it cannot be read. */
  get(ref: ClaimRef, options: { signal: AbortSignal }): Promise<ClaimContent>;
}

/** A claim reduced to what concerns one driver, ready to prepare. */
export interface DriverClaim {
  readonly ref: ClaimRef;
  readonly podClaimName?: string | undefined;
  readonly results: readonly AllocationResult[];
  readonly config: readonly AllocationConfig[];
  readonly reservedFor: readonly ClaimConsumer[];
}

/** A device in a prepare answer; the kubelet passes the CDI IDs to the runtime. */
export interface PreparedDevice {
  /** Base request names (without `/subrequest`); empty means all requests. */
  readonly requestNames: readonly string[];
  readonly poolName: string;
  readonly deviceName: string;
  readonly cdiDeviceIDs: readonly string[];
  readonly shareID?: string | undefined;
}

export interface PreparedClaim {
  readonly devices: readonly PreparedDevice[];
  /** What the preparer needs later (attach, unprepare); persisted as JSON. */
  readonly plan: JsonValue;
}

/**
 * The network semantics of a claim. The DRA layer guarantees:
 * - calls for one claim never overlap (in this process or across instances);
 * - `prepare` starts from a clean slate: if an earlier prepare failed, or
 *   crashed after recording its intent, `unprepare(ref, undefined)` ran first;
 * - whatever `prepare` returns is on disk before the kubelet hears of it, and
 *   later calls for the claim get it back without calling `prepare` again
 *   (after `restore`, where there is one).
 */
export interface ClaimPreparer {
  /**
   * Prepares a claim. Before taking anything outside the agent's own state
   * (an IPAM lease, a file), `recordIntent` must be awaited: it resolves once
   * the note that this prepare may leave something behind is durable, so that
   * after a crash the next prepare rolls back first. The note is written
   * while the claim is read, so awaiting it rarely waits.
   */
  prepare(claim: DriverClaim, options: { signal: AbortSignal; recordIntent: () => Promise<void> }): Promise<PreparedClaim>;
  /**
   * Releases what `prepare` took. `prepared` is undefined when prepare never
   * finished (it crashed or failed): release whatever it may have left.
   */
  unprepare(ref: ClaimRef, prepared: PreparedClaim | undefined, options: { signal: AbortSignal }): Promise<void>;
  /**
   * Puts back what a prepared claim needs outside the agent's state that a
   * reboot wipes (files on a tmpfs: CDI specs, device metadata), without
   * changing what prepare answered. Called when the kubelet asks again for a
   * claim already prepared: after a reboot it always does, before it starts
   * the pod's containers. Absent: nothing to put back.
   */
  restore?(ref: ClaimRef, prepared: PreparedClaim, options: { signal: AbortSignal }): Promise<void>;
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * The part of a claim that belongs to `driver`, like the kubelet plugin
 * helper does it: results allocated by this driver, and the opaque configs
 * for this driver that apply to at least one of those requests.
 */
export function driverClaim(content: ClaimContent, driver: string): Omit<DriverClaim, "ref"> | undefined {
  if (content.allocation === undefined) return undefined;
  const results = content.allocation.results.filter((r) => r.driver === driver);
  // A config may name a request (`req`) or one of its subrequests (`req/sub`).
  const requests = new Set(results.flatMap((r) => [r.request, baseRequestName(r.request)]));
  const config = content.allocation.config.filter(
    (c) => c.driver === driver && (c.requests.length === 0 || c.requests.some((r) => requests.has(r))),
  );
  return { results, config, reservedFor: content.reservedFor ?? [], ...(content.podClaimName !== undefined && { podClaimName: content.podClaimName }) };
}

/** `req/sub` → `req`: the kubelet matches containers by base request name. */
export function baseRequestName(request: string): string {
  const slash = request.indexOf("/");
  return slash === -1 ? request : request.slice(0, slash);
}
