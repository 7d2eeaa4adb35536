/**
 * Test stand-ins for what the agent wires into the DRA plugin: claims read
 * from a JSON file the test writes (so child agent processes see them), and
 * a preparer with a visible side effect and a random nonce, so a test can
 * tell a prepare answered from disk from a second prepare, and see what a
 * crashed prepare left behind.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AllocationPreparer,
  type ClaimContent,
  type ClaimPreparer,
  type ClaimRef,
  type ClaimSource,
  type DriverClaim,
  type PreparedClaim,
} from "../../src/dra/index.ts";

export const DRIVER = "netclaim.dev";

/** Claims by namespace/name in a JSON file; re-read on every get, like an API GET. */
export class FileClaimSource implements ClaimSource {
  readonly #file: string;

  constructor(file: string) {
    this.#file = file;
  }

  async get(ref: ClaimRef): Promise<ClaimContent> {
    const claims = JSON.parse(await readFile(this.#file, "utf8")) as Record<string, ClaimContent>;
    const claim = claims[`${ref.namespace}/${ref.name}`];
    if (claim === undefined) throw new Error(`resourceclaims "${ref.name}" not found`);
    return claim;
  }
}

export async function writeClaims(file: string, claims: readonly ClaimContent[]): Promise<void> {
  await writeFile(file, JSON.stringify(Object.fromEntries(claims.map((c) => [`${c.ref.namespace}/${c.ref.name}`, c]))));
}

/** An allocated claim with `devices` devices of our driver (and one of another driver). */
export function allocatedClaim(uid: string, devices: number, prefix = "eth"): ClaimContent {
  return {
    ref: { namespace: "team-a", uid, name: `claim-${uid}` },
    allocation: {
      results: [
        ...Array.from({ length: devices }, (_, i) => ({ request: i === 0 ? "nic/fast" : `nic${i}`, driver: DRIVER, pool: "node-a", device: `${prefix}${i}` })),
        { request: "gpu", driver: "gpu.example.com", pool: "node-a", device: "gpu0" },
      ],
      config: [{ source: "FromClaim", requests: ["nic"], driver: DRIVER, parameters: { mtu: 9000 } }],
    },
  };
}

export function unallocatedClaim(uid: string): ClaimContent {
  return { ref: { namespace: "team-a", uid, name: `claim-${uid}` } };
}

export function refOf(claim: ClaimContent): ClaimRef {
  return { namespace: claim.ref.namespace, uid: claim.ref.uid, name: claim.ref.name };
}

export interface SideEffectPreparerOptions {
  /** Where each prepared claim leaves a file named after its UID (like a CDI spec). */
  dir: string;
  /** Time between taking the side effect and returning, to widen crash windows. */
  delayMs?: number;
}

/**
 * AllocationPreparer plus a side effect: a file holding a fresh nonce, which
 * also goes into every device's CDI ID. Devices named `broken*` fail after
 * the side effect was taken; devices named `slow*` take a minute (unless
 * the signal aborts first).
 */
export class SideEffectPreparer implements ClaimPreparer {
  readonly #inner = new AllocationPreparer();
  readonly #options: SideEffectPreparerOptions;

  constructor(options: SideEffectPreparerOptions) {
    this.#options = options;
  }

  async prepare(claim: DriverClaim, options: { signal: AbortSignal; recordIntent: () => Promise<void> }): Promise<PreparedClaim> {
    const nonce = randomBytes(6).toString("hex");
    // The file is taken outside the agent's state: the intent goes first.
    await options.recordIntent();
    await mkdir(this.#options.dir, { recursive: true });
    await writeFile(join(this.#options.dir, claim.ref.uid), nonce);
    if (this.#options.delayMs !== undefined) await sleep(this.#options.delayMs, undefined, { signal: options.signal });
    if (claim.results.some((r) => r.device.startsWith("slow"))) await sleep(60_000, undefined, { signal: options.signal });
    const broken = claim.results.find((r) => r.device.startsWith("broken"));
    if (broken !== undefined) throw new Error(`device ${broken.device} refuses to be configured`);
    const prepared = await this.#inner.prepare(claim);
    return { ...prepared, devices: prepared.devices.map((d) => ({ ...d, cdiDeviceIDs: [`${DRIVER}/net=${claim.ref.uid}-${d.deviceName}-${nonce}`] })) };
  }

  async unprepare(ref: ClaimRef): Promise<void> {
    await rm(join(this.#options.dir, ref.uid), { force: true });
  }
}

/** The nonce a side-effect file holds, or undefined when there is none. */
export async function sideEffect(dir: string, uid: string): Promise<string | undefined> {
  try {
    return await readFile(join(dir, uid), "utf8");
  } catch {
    return undefined;
  }
}
