/**
 * NodePrepareResources / NodeUnprepareResources through the kubelet's own
 * DRA client: per-claim answers, idempotence, and per-claim errors.
 */
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { ClaimState, type DraPlugin } from "../../src/dra/index.ts";
import { StateStore } from "../../src/store/index.ts";
import { allocatedClaim, DRIVER, refOf, sideEffect, unallocatedClaim, writeClaims } from "./fixtures.ts";
import { removeDirs, startPlugin, testDirs, type TestDirs } from "./harness.ts";
import { KubeletPeer } from "./kubelet-peer.ts";

describe("DRA prepare and unprepare through the kubelet's client", () => {
  let dirs: TestDirs;
  let peer: KubeletPeer;
  let plugin: DraPlugin;
  const two = allocatedClaim("p-two", 2);
  const one = allocatedClaim("p-one", 1);
  const unallocated = unallocatedClaim("p-unallocated");
  const broken = allocatedClaim("p-broken", 1, "broken");
  const absent = { namespace: "team-a", uid: "p-absent", name: "claim-p-absent" };

  before(async () => {
    dirs = testDirs();
    await mkdir(dirs.registryDir, { recursive: true });
    await writeClaims(dirs.claimsFile, [two, one, unallocated, broken]);
    peer = await KubeletPeer.start(dirs.registryDir, { health: false });
    plugin = await startPlugin(dirs);
    await peer.nextEvent("registered");
  });
  after(async () => {
    await plugin.close();
    await peer.stop();
    removeDirs(dirs);
  });

  const state = async (): Promise<ClaimState> => new ClaimState(await StateStore.open(dirs.stateDir), DRIVER);

  it("answers every claim of one call, failures per claim", async () => {
    const result = await peer.prepare(DRIVER, [two, one, unallocated, broken].map(refOf).concat(absent));
    const claims = result.response.claims ?? {};
    assert.deepEqual(Object.keys(claims).sort(), ["p-absent", "p-broken", "p-one", "p-two", "p-unallocated"]);

    const devices = claims["p-two"]?.devices ?? [];
    assert.deepEqual(devices.map((d) => [d.pool_name, d.device_name, d.request_names]), [["node-a", "eth0", ["nic"]], ["node-a", "eth1", ["nic1"]]]);
    assert.equal(claims["p-two"]?.error, undefined);
    assert.equal(claims["p-one"]?.devices?.length, 1);

    assert.match(claims["p-unallocated"]?.error ?? "", /team-a\/claim-p-unallocated \(uid p-unallocated\): the claim is not allocated yet/);
    assert.match(claims["p-broken"]?.error ?? "", /claim-p-broken.*cannot prepare: device broken0 refuses to be configured/);
    assert.match(claims["p-absent"]?.error ?? "", /cannot read the claim: resourceclaims "claim-p-absent" not found/);

    // A failed prepare leaves nothing behind: no side effect, no state.
    assert.equal(await sideEffect(dirs.sideEffectsDir, "p-broken"), undefined);
    const records = await (await state()).list();
    assert.deepEqual(records.map((r) => [r.claim.uid, r.state]), [["p-one", "prepared"], ["p-two", "prepared"]]);
  });

  it("re-prepare returns the same devices without preparing again", async () => {
    const before = await sideEffect(dirs.sideEffectsDir, "p-two");
    const first = await peer.prepare(DRIVER, [refOf(two)]);
    const again = await peer.prepare(DRIVER, [refOf(two), refOf(one)]);
    assert.ok(before !== undefined);
    assert.deepEqual(again.response.claims?.["p-two"], first.response.claims?.["p-two"]);
    // The CDI ID carries the nonce of the one and only prepare.
    assert.ok(first.response.claims?.["p-two"]?.devices?.[0]?.cdi_device_ids?.[0]?.endsWith(before));
    assert.equal(await sideEffect(dirs.sideEffectsDir, "p-two"), before);
  });

  it("a claim that failed can succeed once its cause is fixed", async () => {
    await writeClaims(dirs.claimsFile, [two, one, allocatedClaim("p-unallocated", 1), broken]);
    const result = await peer.prepare(DRIVER, [refOf(unallocated)]);
    assert.equal(result.response.claims?.["p-unallocated"]?.devices?.length, 1);
  });

  it("unprepare releases prepared claims and succeeds for claims it never saw", async () => {
    const claims = [refOf(two), refOf(one), refOf(unallocated), absent, { namespace: "x", uid: "never-seen", name: "never" }];
    const result = await peer.unprepare(DRIVER, claims);
    const answers = result.response.claims ?? {};
    assert.deepEqual(Object.keys(answers).sort(), ["never-seen", "p-absent", "p-one", "p-two", "p-unallocated"]);
    for (const [uid, answer] of Object.entries(answers)) assert.equal(answer?.error, undefined, uid);
    assert.equal(await sideEffect(dirs.sideEffectsDir, "p-two"), undefined);
    assert.deepEqual(await (await state()).list(), []);

    // Twice is fine too.
    const again = await peer.unprepare(DRIVER, claims);
    assert.equal(Object.keys(again.response.claims ?? {}).length, 5);
  });

  it("a replaced claim (same name, new UID) is refused", async () => {
    const replaced = allocatedClaim("p-replaced", 1);
    await writeClaims(dirs.claimsFile, [{ ...replaced, ref: { ...replaced.ref, uid: "p-replaced-new" } }]);
    // The kubelet still asks for the old UID; the API has the new object under the same name.
    const result = await peer.prepare(DRIVER, [refOf(replaced)]);
    assert.match(result.response.claims?.["p-replaced"]?.error ?? "", /the claim was replaced: it has uid p-replaced-new now/);
  });
});
