import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ClaimState } from "../dra/index.ts";
import { openJournal } from "../engine/journal.ts";
import { StateStore } from "../store/index.ts";
import { checkState } from "./state.ts";

const DRIVER = "netclaim.dev";
const claim = (uid: string) => ({ namespace: "default", name: `claim-${uid}`, uid });

/** A journal record as the engine writes it: a device in a pod, with what it was on the host. */
function attachment(key: string) {
  return {
    plan: { key, device: { name: "ens1f0" }, netns: "/var/run/netns/cni-1", podName: "net1", addresses: [], routes: [], sysctls: {} },
    intent: "attach" as const,
    host: { name: "ens1f0", ifindex: 7, mtu: 1500, up: true, addresses: [], routes: [] },
  };
}

describe("checkState", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp("/tmp/nc-doc-state-");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function fixture(name: string): Promise<{ stateDir: string; runtimeDir: string; driverName: string }> {
    const stateDir = join(dir, name, "state");
    const runtimeDir = join(dir, name, "run");
    await new ClaimState(await StateStore.open(stateDir), DRIVER).markPrepared(claim("uid-1"), { devices: [], plan: {} });
    await openJournal(await StateStore.open(runtimeDir)).put("uid-1:pci-0000-3b-00-0", attachment("uid-1:pci-0000-3b-00-0"));
    return { stateDir, runtimeDir, driverName: DRIVER };
  }

  it("checkState passes when every record parses and every attachment's claim is prepared", async () => {
    const options = await fixture("clean");
    assert.deepEqual((await checkState(options)).map((r) => `${r.status} ${r.name}: ${r.message}`), [
      `PASS claim state: ${options.stateDir}: 1 prepared claim(s), every record parses`,
      "PASS attachment journal: 1 attachment(s), each of a prepared claim",
    ]);
  });

  it("checkState warns about an attachment whose claim is not prepared", async () => {
    const options = await fixture("orphan");
    await openJournal(await StateStore.open(options.runtimeDir)).put("uid-2:pci-0000-3b-00-1", attachment("uid-2:pci-0000-3b-00-1"));
    const [, journal] = await checkState(options);
    assert.equal(journal?.status, "WARN");
    assert.equal(journal.message, "1 attachment(s) of claims not prepared: uid-2:pci-0000-3b-00-1 (attach, pod netns /var/run/netns/cni-1, host name ens1f0)");
  });

  it("checkState fails naming a record that does not parse", async () => {
    const options = await fixture("corrupt");
    await writeFile(join(options.stateDir, "dra-claims", "uid-3.json"), "{ not json");
    const results = await checkState(options);
    assert.equal(results.length, 1);
    assert.equal(results[0]?.status, "FAIL");
    assert.match(results[0].message, /^a record in .* does not parse: .*uid-3\.json/);
  });

  it("checkState passes on a node where the agent never ran", async () => {
    const results = await checkState({ stateDir: join(dir, "none", "state"), runtimeDir: join(dir, "none", "run"), driverName: DRIVER });
    assert.deepEqual(results.map((r) => r.status), ["PASS", "PASS"]);
  });
});
