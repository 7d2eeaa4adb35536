/**
 * Prepared claims on disk, one record per claim UID, in the shared state
 * directory so every agent instance (rolling updates) sees the same truth.
 *
 * A prepare writes `prepared`, with the devices and plan, before the kubelet
 * hears the answer; one that takes something outside the agent (an IPAM
 * lease, a CDI file) first writes `preparing`, an intent: something may be
 * taken from here on. After `kill -9` a claim is therefore absent (nothing
 * was taken), `preparing` (roll back, then prepare again) or `prepared`
 * (answer from disk), never half.
 */
import { join } from "node:path";
import { z } from "zod";
import type { Collection, StateStore } from "../store/index.ts";
import { ClaimLocks } from "./claim-locks.ts";
import type { ClaimRef, JsonValue, PreparedClaim } from "./claim.ts";
import { ClaimError } from "./errors.ts";

const COLLECTION = "dra-claims";
/** The claim locks' directory in the state store, shared by prepare, unprepare and updatePlan. */
export const CLAIM_LOCKS_DIR = "dra-locks";

const claimRefSchema = z.strictObject({ namespace: z.string(), uid: z.string().min(1), name: z.string() });

const deviceSchema = z.strictObject({
  requestNames: z.array(z.string()),
  poolName: z.string().min(1),
  deviceName: z.string().min(1),
  cdiDeviceIDs: z.array(z.string()),
  shareID: z.string().optional(),
});

const recordSchema = z.discriminatedUnion("state", [
  z.strictObject({ state: z.literal("preparing"), claim: claimRefSchema, driver: z.string(), since: z.iso.datetime() }),
  z.strictObject({
    state: z.literal("prepared"),
    claim: claimRefSchema,
    driver: z.string(),
    since: z.iso.datetime(),
    devices: z.array(deviceSchema),
    plan: z.json(),
  }),
]);

export type ClaimRecord = z.infer<typeof recordSchema>;

export class ClaimState {
  readonly #records: Collection<ClaimRecord>;
  readonly #driver: string;
  readonly #lockDir: string;
  #locks: ClaimLocks | undefined;

  constructor(store: StateStore, driver: string) {
    this.#records = store.collection(COLLECTION, recordSchema);
    this.#driver = driver;
    this.#lockDir = join(store.dir, CLAIM_LOCKS_DIR);
  }

  async get(claim: ClaimRef): Promise<ClaimRecord | undefined> {
    return this.#wrap(claim, "read", () => this.#records.get(claim.uid));
  }

  async markPreparing(claim: ClaimRef): Promise<void> {
    await this.#put(claim, { state: "preparing", claim: pickRef(claim), driver: this.#driver, since: new Date().toISOString() });
  }

  async markPrepared(claim: ClaimRef, prepared: PreparedClaim): Promise<void> {
    await this.#put(claim, {
      state: "prepared",
      claim: pickRef(claim),
      driver: this.#driver,
      since: new Date().toISOString(),
      devices: prepared.devices.map((d) => ({
        requestNames: [...d.requestNames],
        poolName: d.poolName,
        deviceName: d.deviceName,
        cdiDeviceIDs: [...d.cdiDeviceIDs],
        ...(d.shareID === undefined ? {} : { shareID: d.shareID }),
      })),
      plan: prepared.plan,
    });
  }

  /**
   * Replaces the plan of a prepared claim with what `update` makes of it,
   * under the claim's lock (the one prepare and unprepare take, in every
   * agent instance), so an unprepare never races it. Resolves with the new
   * plan, or undefined when the claim is not prepared any more or `update`
   * returned undefined (nothing written).
   */
  async updatePlan(claim: ClaimRef, update: (plan: JsonValue) => JsonValue | undefined, options: { signal: AbortSignal }): Promise<JsonValue | undefined> {
    this.#locks ??= new ClaimLocks(this.#lockDir);
    return this.#locks.run(claim.uid, options, async () => {
      const record = await this.get(claim);
      if (record?.state !== "prepared") return undefined;
      const plan = update(record.plan);
      if (plan === undefined) return undefined;
      await this.#put(claim, { ...record, plan });
      return plan;
    });
  }

  async forget(claim: ClaimRef): Promise<void> {
    await this.#wrap(claim, "delete", () => this.#records.delete(claim.uid));
  }

  /** Every record, sorted by claim UID. */
  async list(): Promise<ClaimRecord[]> {
    return (await this.#records.list()).map(([, record]) => record);
  }

  async #put(claim: ClaimRef, record: ClaimRecord): Promise<void> {
    await this.#wrap(claim, "write", () => this.#records.put(claim.uid, record));
  }

  async #wrap<T>(claim: ClaimRef, action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new ClaimError("CLAIM_STATE", claim, `cannot ${action} its state on disk: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** The prepared result a record holds, for answering and for unprepare. */
export function preparedOf(record: ClaimRecord): PreparedClaim | undefined {
  return record.state === "prepared" ? { devices: record.devices, plan: record.plan } : undefined;
}

function pickRef(claim: ClaimRef): ClaimRef {
  return { namespace: claim.namespace, uid: claim.uid, name: claim.name };
}
