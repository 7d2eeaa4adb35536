import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { StateStore } from "../store/index.ts";
import { ClaimLocks } from "./claim-locks.ts";
import { CLAIM_LOCKS_DIR, ClaimState } from "./claim-state.ts";

const never = new AbortController().signal;
const claim = { namespace: "team-a", name: "nic", uid: "claim-1" };
const prepared = { devices: [{ requestNames: ["nic"], poolName: "node-a", deviceName: "eth0", cdiDeviceIDs: [] }], plan: { pod: "first", extra: [1] } };

describe("ClaimState.updatePlan", () => {
  let dir: string;
  let state: ClaimState;
  beforeEach(async () => {
    dir = await mkdtemp("/tmp/nc-claim-state-");
    state = new ClaimState(await StateStore.open(dir), "netclaim.dev");
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("replaces a prepared claim's plan with what the update makes of it, and keeps its devices", async () => {
    await state.markPrepared(claim, prepared);
    const written = await state.updatePlan(claim, (plan) => ({ ...(plan as Record<string, never>), pod: "second" }), { signal: never });
    assert.deepEqual(written, { pod: "second", extra: [1] });
    const record = await state.get(claim);
    assert.equal(record?.state, "prepared");
    assert.deepEqual(record.plan, { pod: "second", extra: [1] });
    assert.deepEqual(record.devices, prepared.devices);
  });

  it("writes nothing when the claim is not prepared or the update declines", async () => {
    assert.equal(await state.updatePlan(claim, () => ({ pod: "second" }), { signal: never }), undefined);
    assert.equal(await state.get(claim), undefined, "no record appears for a claim that was not prepared");
    await state.markPrepared(claim, prepared);
    assert.equal(await state.updatePlan(claim, () => undefined, { signal: never }), undefined);
    const record = await state.get(claim);
    assert.deepEqual(record?.state === "prepared" ? record.plan : undefined, prepared.plan);
  });

  it("waits for the claim's lock, which prepare and unprepare hold, and sees what they left", async () => {
    await state.markPrepared(claim, prepared);
    // The DRA plugin's own lock instance, as an unprepare holds it.
    const lock = await new ClaimLocks(join(dir, CLAIM_LOCKS_DIR)).acquire(claim.uid, { signal: never });
    let done = false;
    const update = state.updatePlan(claim, () => ({ pod: "second" }), { signal: never }).finally(() => (done = true));
    await sleep(100);
    assert.equal(done, false, "the update waits while the lock is held");
    await state.forget(claim);
    await lock[Symbol.asyncDispose]();
    assert.equal(await update, undefined, "the claim was unprepared meanwhile: nothing written");
    assert.equal(await state.get(claim), undefined);
  });
});
