import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { Registry } from "prom-client";
import { StateStore } from "../store/index.ts";
import type { ClaimContent, ClaimPreparer, ClaimRef, DriverClaim, PreparedClaim } from "./claim.ts";
import { ClaimLocks } from "./claim-locks.ts";
import { ClaimService } from "./claim-service.ts";
import { ClaimState } from "./claim-state.ts";
import { DraMetrics } from "./metrics.ts";

const DRIVER = "netclaim.dev";
const never = new AbortController().signal;
const ref = (uid: string): ClaimRef => ({ namespace: "ns", uid, name: `claim-${uid}` });
const content = (uid: string): ClaimContent => ({
  ref: ref(uid),
  allocation: { results: [{ request: "nic", driver: DRIVER, pool: "p", device: `dev-${uid}` }], config: [] },
});

/** A preparer that records calls and can be held at prepare until released. */
class FakePreparer implements ClaimPreparer {
  readonly calls: string[] = [];
  gate: Promise<void> | undefined;
  failOn = new Set<string>();
  /** Claims whose prepare takes something outside the agent (so records its intent first). */
  takesSomething = new Set<string>();

  async prepare(claim: DriverClaim, options: { recordIntent: () => Promise<void> }): Promise<PreparedClaim> {
    if (this.takesSomething.has(claim.ref.uid)) await options.recordIntent();
    this.calls.push(`prepare ${claim.ref.uid}`);
    await this.gate;
    if (this.failOn.has(claim.ref.uid)) throw new Error("no such interface");
    return {
      devices: claim.results.map((r) => ({ requestNames: [r.request], poolName: r.pool, deviceName: r.device, cdiDeviceIDs: [`x/y=${this.calls.length}`] })),
      plan: { n: this.calls.length },
    };
  }

  unprepare(claim: ClaimRef, prepared: PreparedClaim | undefined): Promise<void> {
    this.calls.push(`unprepare ${claim.uid} ${prepared === undefined ? "partial" : "prepared"}`);
    return Promise.resolve();
  }

  restore(claim: ClaimRef, prepared: PreparedClaim): Promise<void> {
    this.calls.push(`restore ${claim.uid} ${JSON.stringify(prepared.plan)}`);
    return this.failOn.has(`restore ${claim.uid}`) ? Promise.reject(new Error("read-only file system")) : Promise.resolve();
  }
}

describe("ClaimService", () => {
  let dir: string;
  let state: ClaimState;
  let preparer: FakePreparer;
  let registry: Registry;
  let service: ClaimService;
  let logLines: string[];
  /** Holds every read of a claim until it resolves. */
  let readGate: Promise<void> | undefined;

  beforeEach(async () => {
    readGate = undefined;
    dir = await mkdtemp("/tmp/nc-dra-svc-");
    const store = await StateStore.open(join(dir, "state"));
    state = new ClaimState(store, DRIVER);
    preparer = new FakePreparer();
    registry = new Registry();
    logLines = [];
    service = new ClaimService({
      driver: DRIVER,
      source: {
        get: async (r) => {
          await readGate;
          if (r.uid.startsWith("missing")) throw new Error("not found");
          return content(r.uid);
        },
      },
      preparer,
      state,
      locks: new ClaimLocks(join(dir, "locks")),
      logger: pino({ level: "info" }, { write: (line: string) => logLines.push(line) }),
      metrics: new DraMetrics(registry),
    });
  });
  afterEach(async () => {
    await service.close(100);
    await rm(dir, { recursive: true, force: true });
  });

  it("prepareClaims answers each claim once, failures per claim", async () => {
    preparer.failOn.add("bad");
    const outcomes = await service.prepareClaims([ref("a"), ref("bad"), ref("missing"), ref("a")], never);
    assert.deepEqual([...outcomes.keys()], ["a", "bad", "missing"]);
    assert.equal(outcomes.get("a")?.ok, true);
    const bad = outcomes.get("bad");
    assert.ok(bad?.ok === false);
    assert.equal(bad.error.code, "CLAIM_PREPARE");
    assert.match(bad.error.message, /^claim ns\/claim-bad \(uid bad\): cannot prepare: no such interface$/);
    const missing = outcomes.get("missing");
    assert.ok(missing?.ok === false && missing.error.code === "CLAIM_SOURCE");
    // The failed prepare was rolled back and left no state.
    assert.deepEqual(preparer.calls.filter((c) => c.endsWith(" a")), ["prepare a"]);
    assert.deepEqual(preparer.calls.filter((c) => c.includes("bad")), ["prepare bad", "unprepare bad partial"]);
    assert.deepEqual((await state.list()).map((r) => r.claim.uid), ["a"]);
  });

  it("prepareClaim answers a re-prepare from disk without preparing again, restoring what a reboot wiped", async () => {
    const first = await service.prepareClaim(ref("a"), never);
    const again = await service.prepareClaim(ref("a"), never);
    assert.deepEqual(again, first);
    assert.deepEqual(preparer.calls, ["prepare a", 'restore a {"n":1}']);
    const metrics = await registry.getMetricsAsJSON();
    const ops = metrics.find((m) => m.name === "netclaim_dra_claim_operations_total");
    assert.deepEqual(ops?.values.map((v) => [v.labels.status, v.value]).sort(), [["noop", 1], ["success", 1]]);
  });

  it("prepareClaim fails a re-prepare whose restore fails, naming the claim, and keeps it prepared", async () => {
    await service.prepareClaim(ref("a"), never);
    preparer.failOn.add("restore a");
    await assert.rejects(service.prepareClaim(ref("a"), never), /cannot restore the files of a prepared claim: read-only file system/);
    assert.equal((await state.get(ref("a")))?.state, "prepared");
  });

  it("prepareClaim serializes concurrent calls for one claim", async () => {
    let release = (): void => undefined;
    preparer.gate = new Promise((resolve) => (release = resolve));
    const one = service.prepareClaim(ref("a"), never);
    const two = service.prepareClaim(ref("a"), never);
    await new Promise((resolve) => setTimeout(resolve, 30));
    release();
    assert.deepEqual(await one, await two);
    assert.deepEqual(preparer.calls, ["prepare a", 'restore a {"n":1}'], "the second finds it prepared");
  });

  it("prepareClaim rolls back a prepare interrupted by a crash before preparing again", async () => {
    await state.markPreparing(ref("a"));
    await service.prepareClaim(ref("a"), never);
    assert.deepEqual(preparer.calls, ["unprepare a partial", "prepare a"]);
    assert.equal((await state.get(ref("a")))?.state, "prepared");
  });

  it("writes the preparing intent while the claim is read, so that its fsync is off the pod's start, and forgets it when the read fails", async () => {
    preparer.takesSomething = new Set(["takes"]);
    let release = (): void => undefined;
    readGate = new Promise((resolve) => (release = resolve));
    const takes = service.prepareClaim(ref("takes"), never);
    const missing = assert.rejects(service.prepareClaim(ref("missing"), never), /cannot read the claim: not found/);
    // Each intent is fsynced: on a busy machine that can take a while, and the claims' reads wait meanwhile.
    const until = Date.now() + 10_000;
    while (Date.now() < until && (await state.list()).length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    // Both claims are still being read: a crash here leaves a trace that a later prepare rolls back.
    assert.deepEqual((await state.list()).map((r) => [r.claim.uid, r.state]).sort(), [["missing", "preparing"], ["takes", "preparing"]]);
    assert.deepEqual(preparer.calls, []);
    release();
    await takes;
    await missing;
    assert.deepEqual((await state.list()).map((r) => [r.claim.uid, r.state]), [["takes", "prepared"]]);
  });

  it("logs how long each phase of a prepare took, so a slow one shows where the time went", async () => {
    let release = (): void => undefined;
    preparer.gate = new Promise((resolve) => (release = resolve));
    const prepared = service.prepareClaim(ref("a"), never);
    setTimeout(() => {
      release();
    }, 50);
    await prepared;
    const done = logLines.map((l) => JSON.parse(l) as { msg: string; ms: number; phaseMs?: Record<string, number> }).find((l) => l.msg === "prepare done");
    assert.ok(done?.phaseMs, "the prepare done line carries phaseMs");
    assert.deepEqual(Object.keys(done.phaseMs), ["starting", "waiting for the claim's lock", "reading its state", "reading the claim", "preparing", "saving the result"]);
    assert.ok((done.phaseMs["preparing"] ?? 0) >= 40, `the held preparer's time is under "preparing": ${JSON.stringify(done.phaseMs)}`);
    const total = Object.values(done.phaseMs).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - done.ms) <= 2, `the phases add up to the whole (${String(total)} vs ${String(done.ms)})`);
  });

  it("unprepareClaim releases an interrupted prepare and forgets unknown claims quietly", async () => {
    await state.markPreparing(ref("a"));
    await service.unprepareClaim(ref("a"), never);
    await service.unprepareClaim(ref("never-seen"), never);
    assert.deepEqual(preparer.calls, ["unprepare a partial"]);
    assert.deepEqual(await state.list(), []);
  });

  it("close stops waiting for work that ignores its signal after the grace period", async () => {
    preparer.gate = new Promise(() => undefined); // never released
    const pending = service.prepareClaims([ref("stuck")], never);
    await new Promise((resolve) => setTimeout(resolve, 30));
    await service.close(50);
    const outcome = (await pending).get("stuck");
    assert.ok(outcome?.ok === false);
    assert.match(outcome.error.message, /gave up while preparing: the DRA plugin is stopping/);
  });

  it("prepareClaim gives a per-claim deadline error when the budget runs out, and the work still lands", async () => {
    let release = (): void => undefined;
    preparer.gate = new Promise((resolve) => (release = resolve));
    const budget = new AbortController();
    const pending = service.prepareClaims([ref("slow")], budget.signal);
    await new Promise((resolve) => setTimeout(resolve, 30));
    budget.abort(new Error("the call's 30 ms budget ran out"));
    const outcome = (await pending).get("slow");
    assert.ok(outcome?.ok === false);
    assert.equal(outcome.error.code, "CLAIM_DEADLINE");
    assert.match(outcome.error.message, /gave up while preparing: the call's 30 ms budget ran out/);
    release();
    await service.close();
    assert.deepEqual(preparer.calls, ["prepare slow"]);
    // This preparer ignores the signal: its result is still saved, so the kubelet's retry gets it.
    assert.equal((await state.get(ref("slow")))?.state, "prepared");
  });
});
