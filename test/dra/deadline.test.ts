/**
 * The call budget: the kubelet gives a call 45 s; a claim that cannot finish
 * within our budget gets its own error (the kubelet retries it later) while
 * the other claims of the call are answered, instead of the whole call
 * failing with DeadlineExceeded. A short budget stands in for the 40 s one.
 */
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ClaimState, type DraPlugin } from "../../src/dra/index.ts";
import { StateStore } from "../../src/store/index.ts";
import { allocatedClaim, DRIVER, refOf, sideEffect, writeClaims } from "./fixtures.ts";
import { removeDirs, startPlugin, testDirs, type TestDirs } from "./harness.ts";
import { KubeletPeer } from "./kubelet-peer.ts";

describe("DRA call budget", () => {
  let dirs: TestDirs;
  let peer: KubeletPeer;
  let plugin: DraPlugin;
  const fast = allocatedClaim("dl-fast", 1);
  const slow = allocatedClaim("dl-slow", 1, "slow");

  before(async () => {
    dirs = testDirs();
    await mkdir(dirs.registryDir, { recursive: true });
    await writeClaims(dirs.claimsFile, [fast, slow]);
    peer = await KubeletPeer.start(dirs.registryDir, { health: false });
    plugin = await startPlugin(dirs, { callBudgetMs: 500 });
    await peer.nextEvent("registered");
  });
  after(async () => {
    await plugin.close();
    await peer.stop();
    removeDirs(dirs);
  });

  it("a claim that runs out of budget gets a per-claim error; the others are answered", async () => {
    const result = await peer.prepare(DRIVER, [refOf(fast), refOf(slow)]);
    const claims = result.response.claims ?? {};
    assert.equal(claims["dl-fast"]?.devices?.length, 1);
    assert.match(claims["dl-slow"]?.error ?? "", /claim-dl-slow \(uid dl-slow\): gave up while preparing: the call's \d+ ms budget ran out/);
  });

  it("the abandoned prepare is rolled back, so the kubelet's retry starts clean", async () => {
    const state = new ClaimState(await StateStore.open(dirs.stateDir), DRIVER);
    for (let i = 0; i < 100 && (await state.get(refOf(slow))) !== undefined; i++) await sleep(20);
    assert.equal(await state.get(refOf(slow)), undefined);
    assert.equal(await sideEffect(dirs.sideEffectsDir, "dl-slow"), undefined);
  });
});
