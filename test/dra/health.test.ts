/**
 * The DRAResourceHealth stream as the kubelet's DRA plugin manager opens it
 * (ResourceHealthStatus gate on): the full device list at once, again after
 * every change, and periodically so the kubelet's 30 s timeout never fires.
 */
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { MutableDeviceHealthSource, type DraPlugin } from "../../src/dra/index.ts";
import { DRIVER } from "./fixtures.ts";
import { removeDirs, startPlugin, testDirs, type TestDirs } from "./harness.ts";
import { KubeletPeer, type PeerEvent } from "./kubelet-peer.ts";

const summary = (event: PeerEvent): string[] =>
  (event.devices as { pool: string; device: string; health: string }[]).map((d) => `${d.pool}/${d.device}=${d.health}`);

describe("DRA health stream to the kubelet", () => {
  let dirs: TestDirs;
  let peer: KubeletPeer;
  let plugin: DraPlugin;
  const health = new MutableDeviceHealthSource([
    { pool: "node-a", device: "eth0", health: "healthy" },
    { pool: "node-a", device: "eth1", health: "healthy" },
  ]);

  before(async () => {
    dirs = testDirs();
    await mkdir(dirs.registryDir, { recursive: true });
    peer = await KubeletPeer.start(dirs.registryDir, { health: true });
    plugin = await startPlugin(dirs, { health, healthResendMs: 300 });
    await peer.nextEvent("registered");
  });
  after(async () => {
    await plugin.close();
    await peer.stop();
    removeDirs(dirs);
  });

  it("sends the complete device list when the kubelet connects", async () => {
    const first = await peer.nextEvent("health");
    assert.equal(first.driver, DRIVER);
    assert.deepEqual(summary(first), ["node-a/eth0=HEALTHY", "node-a/eth1=HEALTHY"]);
    const stamp = (first.devices as { lastUpdatedTime: number }[])[0]!.lastUpdatedTime;
    assert.ok(Math.abs(stamp - Date.now() / 1000) < 60, `lastUpdatedTime ${stamp} is now`);
  });

  it("the kubelet sees a device turn unhealthy, and recover", async () => {
    health.set([
      { pool: "node-a", device: "eth0", health: "healthy" },
      { pool: "node-a", device: "eth1", health: "unhealthy", message: "link down" },
    ]);
    const isDown = (e: PeerEvent): boolean => summary(e).includes("node-a/eth1=UNHEALTHY");
    const down = await peer.nextEvent("health", isDown);
    assert.deepEqual(summary(down), ["node-a/eth0=HEALTHY", "node-a/eth1=UNHEALTHY"]);

    health.set([{ pool: "node-a", device: "eth0", health: "healthy" }, { pool: "node-a", device: "eth1", health: "healthy" }]);
    const seenDown = peer.events("health").indexOf(down);
    const up = await peer.nextEvent("health", (e) => peer.events("health").indexOf(e) > seenDown && !isDown(e));
    assert.deepEqual(summary(up), ["node-a/eth0=HEALTHY", "node-a/eth1=HEALTHY"]);
  });

  it("re-sends the list without changes, before the kubelet's timeout", async () => {
    const count = peer.events("health").length;
    // 300 ms re-send interval: a few more messages arrive with nothing changed.
    const later = await peer.nextEvent("health", () => true, count + 3);
    assert.deepEqual(summary(later), ["node-a/eth0=HEALTHY", "node-a/eth1=HEALTHY"]);
  });

  it("ends the stream when the plugin stops", async () => {
    await plugin.close();
    const ended = await peer.nextEvent("health-stream-ended");
    assert.equal(ended.driver, DRIVER);
  });
});
