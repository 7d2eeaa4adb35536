/**
 * Registration against the kubelet's own plugin watcher and DRA plugin
 * manager (test/peers/kubelet at K8S_DEFAULT, and at K8S_NEWEST in
 * dra-newest): the kubelet registers us, picks the first DRAPlugin version we
 * advertise that it knows, and deregisters us when the registration socket
 * goes.
 */
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { afterEach, before, beforeEach, describe, it } from "node:test";
import type { DraPlugin } from "../../src/dra/index.ts";
import { allocatedClaim, DRIVER, refOf, writeClaims } from "./fixtures.ts";
import { removeDirs, startPlugin, testDirs, type TestDirs } from "./harness.ts";
import { KubeletPeer, kubeletPeerBinary } from "./kubelet-peer.ts";

describe("DRA plugin registration with the kubelet", () => {
  let dirs: TestDirs;
  let peer: KubeletPeer | undefined;
  let plugin: DraPlugin | undefined;

  before(() => {
    kubeletPeerBinary(); // build once, outside the tests' time
  });
  beforeEach(async () => {
    dirs = testDirs();
    await mkdir(dirs.registryDir, { recursive: true });
    peer = await KubeletPeer.start(dirs.registryDir);
  });
  afterEach(async () => {
    await plugin?.close();
    await peer?.stop();
    plugin = undefined;
    peer = undefined;
    removeDirs(dirs);
  });

  it("registers, advertises v1 first, and the kubelet picks v1", async () => {
    const claim = allocatedClaim("reg-v1", 1);
    await writeClaims(dirs.claimsFile, [claim]);
    plugin = await startPlugin(dirs);
    const registered = await peer!.nextEvent("registered");
    assert.equal(registered.driver, DRIVER);
    assert.equal(registered.endpoint, plugin.paths.dra);
    assert.deepEqual(registered.versions, ["v1.DRAPlugin", "v1beta1.DRAPlugin"]);

    const result = await peer!.prepare(DRIVER, [refOf(claim)]);
    assert.equal(result.service, "v1.DRAPlugin");
    assert.equal(result.response.claims?.["reg-v1"]?.devices?.[0]?.device_name, "eth0");
    assert.deepEqual(plugin.registrationStatus, { registered: true, error: "" });
  });

  it("with v1 disabled, the kubelet picks v1beta1 and calls it", async () => {
    const claim = allocatedClaim("reg-v1beta1", 2);
    await writeClaims(dirs.claimsFile, [claim]);
    plugin = await startPlugin(dirs, { versions: ["v1beta1"] });
    const registered = await peer!.nextEvent("registered");
    assert.deepEqual(registered.versions, ["v1beta1.DRAPlugin"]);

    // Only v1beta1 is served, so a successful call proves the kubelet used it.
    const result = await peer!.prepare(DRIVER, [refOf(claim)]);
    assert.equal(result.service, "v1beta1.DRAPlugin");
    assert.deepEqual(result.response.claims?.["reg-v1beta1"]?.devices?.map((d) => d.device_name), ["eth0", "eth1"]);
  });

  it("advertises the health service when it serves one", async () => {
    const { MutableDeviceHealthSource } = await import("../../src/dra/index.ts");
    plugin = await startPlugin(dirs, { health: new MutableDeviceHealthSource() });
    const registered = await peer!.nextEvent("registered");
    assert.deepEqual(registered.versions, ["v1.DRAPlugin", "v1beta1.DRAPlugin", "v1.DRAResourceHealth", "v1alpha1.DRAResourceHealth"]);
  });

  it("serves owner-only sockets and removes them on close, and the kubelet deregisters", async () => {
    plugin = await startPlugin(dirs);
    await peer!.nextEvent("registered");
    for (const path of [plugin.paths.dra, plugin.paths.registration]) {
      const stat = statSync(path);
      assert.ok(stat.isSocket(), path);
      assert.equal(stat.mode & 0o777, 0o600, path);
    }
    const paths = plugin.paths;
    await plugin.close();
    plugin = undefined;
    assert.throws(() => statSync(paths.dra), { code: "ENOENT" });
    assert.throws(() => statSync(paths.registration), { code: "ENOENT" });
    const gone = await peer!.nextEvent("deregistered");
    assert.equal(gone.endpoint, paths.dra);
  });
});
