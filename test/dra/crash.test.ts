/**
 * kill -9 of the agent during a burst of prepares, then a restart: every
 * claim is either prepared (and a re-prepare returns the devices the kubelet
 * was told) or not prepared at all, never half; and whatever a killed
 * prepare had taken is released by the next prepare or unprepare.
 */
import assert from "node:assert/strict";
import { mkdir, readdir } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { ClaimState } from "../../src/dra/index.ts";
import { StateStore } from "../../src/store/index.ts";
import { AgentProcess } from "./agent-process.ts";
import { allocatedClaim, DRIVER, refOf, sideEffect, writeClaims } from "./fixtures.ts";
import { removeDirs, testDirs, type TestDirs } from "./harness.ts";
import { KubeletPeer, type PeerDevice } from "./kubelet-peer.ts";

const CLAIMS = 48;

describe("DRA plugin killed during a burst of prepares", () => {
  let dirs: TestDirs;
  let peer: KubeletPeer;
  let agent: AgentProcess | undefined;
  const claims = Array.from({ length: CLAIMS }, (_, i) => allocatedClaim(`crash-${String(i).padStart(2, "0")}`, 1 + (i % 3)));
  /** What the kubelet was told before the kill, by claim UID. */
  const acknowledged = new Map<string, PeerDevice[]>();

  before(async () => {
    dirs = testDirs();
    await mkdir(dirs.registryDir, { recursive: true });
    await writeClaims(dirs.claimsFile, claims);
    peer = await KubeletPeer.start(dirs.registryDir, { health: false });
  });
  after(async () => {
    await agent?.stop();
    await peer.stop();
    removeDirs(dirs);
  });

  const config = () => ({ ...dirs, prepareDelayMs: 30 });
  const state = async (): Promise<ClaimState> => new ClaimState(await StateStore.open(dirs.stateDir), DRIVER);

  it("kill -9 while prepares are in flight", async () => {
    agent = await AgentProcess.start(config());
    await peer.nextEvent("registered");
    // One call per claim, a few milliseconds apart, as the kubelet does for
    // many pods: at the kill, some claims are done, some mid-way, some not started.
    const calls = claims.map(async (claim, i) => {
      await new Promise((resolve) => setTimeout(resolve, 4 * i));
      try {
        const result = await peer.prepare(DRIVER, [refOf(claim)]);
        const answer = result.response.claims?.[claim.ref.uid];
        if (answer?.error === undefined && answer?.devices !== undefined) acknowledged.set(claim.ref.uid, answer.devices);
      } catch {
        // The call died with the agent: the kubelet would retry it.
      }
    });
    while (acknowledged.size < CLAIMS / 4) await new Promise((resolve) => setTimeout(resolve, 2));
    await agent.kill();
    await Promise.all(calls);
    assert.ok(acknowledged.size < CLAIMS, `the kill came too late: all ${CLAIMS} prepares had finished`);
  });

  it("after the kill each claim's state is whole: absent, an intent, or complete with its side effect", async (t) => {
    const records = new Map((await (await state()).list()).map((r) => [r.claim.uid, r]));
    const states = [...records.values()].map((r) => r.state);
    t.diagnostic(`acknowledged ${acknowledged.size}, prepared ${states.filter((s) => s === "prepared").length}, interrupted ${states.filter((s) => s === "preparing").length}, untouched ${CLAIMS - records.size}`);
    for (const claim of claims) {
      const uid = claim.ref.uid;
      const record = records.get(uid);
      const effect = await sideEffect(dirs.sideEffectsDir, uid);
      if (acknowledged.has(uid)) assert.equal(record?.state, "prepared", `${uid} was acknowledged, so it is on disk`);
      if (record === undefined) {
        assert.equal(effect, undefined, `${uid} has no state, so nothing may have been taken`);
      } else if (record.state === "prepared") {
        assert.equal(record.devices.length, 1 + (Number(uid.slice(-2)) % 3), `${uid} has all its devices`);
        assert.ok(effect !== undefined && record.devices.every((d) => d.cdiDeviceIDs[0]?.endsWith(effect)), `${uid}: devices match the side effect`);
      }
    }
  });

  it("after a restart, re-prepare returns what was acknowledged and completes the rest", async () => {
    agent = await AgentProcess.start(config());
    // The restarted agent replaced its stale registration socket: the kubelet registers it again.
    await peer.nextEvent("registered", () => true, 2);
    await peer.waitForEndpoint(DRIVER, agent.paths.dra);
    const result = await peer.prepare(DRIVER, claims.map(refOf));
    for (const claim of claims) {
      const uid = claim.ref.uid;
      const answer = result.response.claims?.[uid];
      assert.equal(answer?.error, undefined, uid);
      const devices = answer?.devices ?? [];
      assert.equal(devices.length, 1 + (Number(uid.slice(-2)) % 3), uid);
      if (acknowledged.has(uid)) assert.deepEqual(devices, acknowledged.get(uid), `${uid}: same devices as before the kill`);
      const effect = await sideEffect(dirs.sideEffectsDir, uid);
      assert.ok(effect !== undefined && devices.every((d) => d.cdi_device_ids?.[0]?.endsWith(effect)), `${uid}: one live side effect`);
    }
    assert.ok((await (await state()).list()).every((r) => r.state === "prepared"));
  });

  it("unprepare after the restart releases everything", async () => {
    const result = await peer.unprepare(DRIVER, claims.map(refOf));
    assert.ok(Object.values(result.response.claims ?? {}).every((a) => a?.error === undefined));
    assert.deepEqual(await readdir(dirs.sideEffectsDir), []);
    assert.deepEqual(await (await state()).list(), []);
  });
});
