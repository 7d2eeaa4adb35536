/**
 * A DaemonSet rolling update: two agent instances (different pod UIDs, the
 * same state directory) registered with the kubelet at once. The kubelet
 * calls the newer one; killing the older loses nothing, since either
 * instance can unprepare what the other prepared.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { allocatedClaim, DRIVER, refOf, sideEffect, writeClaims } from "./fixtures.ts";
import { AgentProcess } from "./agent-process.ts";
import { removeDirs, testDirs, type TestDirs } from "./harness.ts";
import { KubeletPeer } from "./kubelet-peer.ts";

const OLD_POD = "0b7f3c1e-old0-4a4a-9d9d-000000000001";
const NEW_POD = "0b7f3c1e-new0-4a4a-9d9d-000000000002";

describe("DRA plugin rolling update", () => {
  let dirs: TestDirs;
  let peer: KubeletPeer;
  let older: AgentProcess;
  let newer: AgentProcess | undefined;
  const byOld = allocatedClaim("ru-by-old", 2);
  const byNew = allocatedClaim("ru-by-new", 1);

  before(async () => {
    dirs = testDirs();
    await mkdir(dirs.registryDir, { recursive: true });
    await writeClaims(dirs.claimsFile, [byOld, byNew]);
    peer = await KubeletPeer.start(dirs.registryDir, { health: false });
  });
  after(async () => {
    await older.kill();
    await newer?.stop();
    await peer.stop();
    removeDirs(dirs);
  });

  const config = (podUID: string) => ({ ...dirs, podUID });

  it("uses per-pod socket names", async () => {
    older = await AgentProcess.start(config(OLD_POD));
    assert.equal(older.paths.registration, `${dirs.registryDir}/${DRIVER}-${OLD_POD}-reg.sock`);
    assert.equal(older.paths.dra, `${dirs.kubeletRootDir}/plugins/${DRIVER}/dra-${OLD_POD}.sock`);
    await peer.nextEvent("registered", (e) => e.endpoint === older.paths.dra);
  });

  it("the older instance prepares while it is alone", async () => {
    const result = await peer.prepare(DRIVER, [refOf(byOld)]);
    assert.equal(result.endpoint, older.paths.dra);
    assert.equal(result.response.claims?.["ru-by-old"]?.devices?.length, 2);
  });

  it("once the newer instance registers, the kubelet calls it", async () => {
    newer = await AgentProcess.start(config(NEW_POD));
    const paths = newer.paths;
    await peer.nextEvent("registered", (e) => e.endpoint === paths.dra);
    assert.ok(existsSync(older.paths.registration), "the older instance is still registered");
    await peer.waitForEndpoint(DRIVER, paths.dra);
    const result = await peer.prepare(DRIVER, [refOf(byNew)]);
    assert.equal(result.endpoint, paths.dra);
    assert.equal(result.service, "v1.DRAPlugin");
  });

  it("the newer instance answers a re-prepare of what the older prepared, from the shared state", async () => {
    const before = await sideEffect(dirs.sideEffectsDir, "ru-by-old");
    const result = await peer.prepare(DRIVER, [refOf(byOld)]);
    assert.equal(result.endpoint, newer!.paths.dra);
    assert.ok(result.response.claims?.["ru-by-old"]?.devices?.every((d) => d.cdi_device_ids?.[0]?.endsWith(before!)));
  });

  it("killing the older instance loses nothing: the newer unprepares what the older prepared", async () => {
    await older.kill();
    const result = await peer.unprepare(DRIVER, [refOf(byOld), refOf(byNew)]);
    assert.equal(result.endpoint, newer!.paths.dra);
    assert.equal(result.response.claims?.["ru-by-old"]?.error, undefined);
    assert.equal(result.response.claims?.["ru-by-new"]?.error, undefined);
    assert.equal(await sideEffect(dirs.sideEffectsDir, "ru-by-old"), undefined);
    assert.equal(await sideEffect(dirs.sideEffectsDir, "ru-by-new"), undefined);
  });
});
