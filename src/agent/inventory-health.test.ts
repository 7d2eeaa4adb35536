import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import type { DeviceHealthReport } from "../dra/index.ts";
import type { RecoveryResult } from "../engine/index.ts";
import type { DeviceReport, InventorySnapshot } from "../inventory/index.ts";
import { healthOf, InventoryHealth, RecoveryFindings, type RecoveryEngine } from "./inventory-health.ts";
import type { PodLinkState } from "./pod-links.ts";
import { AttachmentRecovery } from "./recovery.ts";

const POOL = "worker-1";
const LOST: RecoveryResult = { outcome: "lost", error: "device eth1 is neither in pod /run/netns/x nor on the host" };
const UNPLACED: RecoveryResult = { outcome: "unplaced", error: "device eth1: pod namespace /run/netns/x is gone and the device is not on the host" };
const FAILED: RecoveryResult = { outcome: "failed", error: "attachment claim-1:eth1, step configure: EBUSY" };

/** A published report; `attached`: carried over from before the device moved into a pod. */
function report(name: string, options: { operState?: string; attached?: boolean; publish?: boolean } = {}): DeviceReport {
  return {
    name,
    device: { ifName: name, ifIndex: 7, linkType: "ether", virtual: false, lowers: [], devPort: 0, ...(options.operState !== undefined && { operState: options.operState }) },
    attributes: { local: {}, standard: {} },
    publish: options.publish ?? true,
    reason: "selected",
    attached: options.attached ?? false,
  };
}

function health(reports: DeviceReport[], findings: Record<string, RecoveryResult> = {}): Record<string, Pick<DeviceHealthReport, "health" | "message">> {
  return Object.fromEntries(healthOf({ reports }, POOL, new Map(Object.entries(findings))).map((h) => [h.device, { health: h.health, message: h.message }]));
}

/** An engine whose recover() and retarget() answer what the test resolves them with, when it does. */
class ControlledEngine implements RecoveryEngine {
  readonly #pending: { kind: "recover" | "retarget"; resolve: (results: Map<string, RecoveryResult>) => void }[] = [];

  recover(): Promise<Map<string, RecoveryResult>> {
    return new Promise((resolve) => this.#pending.push({ kind: "recover", resolve }));
  }

  retarget(): Promise<Map<string, RecoveryResult>> {
    return new Promise((resolve) => this.#pending.push({ kind: "retarget", resolve }));
  }

  attachments(): Promise<string[]> {
    return Promise.resolve([]);
  }

  /** Answers the oldest open call of `kind`. */
  answer(kind: "recover" | "retarget", results: Record<string, RecoveryResult>): void {
    const index = this.#pending.findIndex((p) => p.kind === kind);
    const [call] = this.#pending.splice(index, 1);
    assert.ok(call, `no ${kind} call is open`);
    call.resolve(new Map(Object.entries(results)));
  }
}

/** Answers the open `kind` call with `results` and waits for `call`, the observed one, to take them in. */
async function through(engine: ControlledEngine, call: Promise<unknown>, kind: "recover" | "retarget", results: Record<string, RecoveryResult>): Promise<void> {
  engine.answer(kind, results);
  await call;
}

describe("healthOf", () => {
  it("reports a device on the host by its link, and leaves out unpublished ones", () => {
    assert.deepEqual(health([report("eth0", { operState: "up" }), report("eth2", { operState: "lowerlayerdown" }), report("eth3", { publish: false })]), {
      eth0: { health: "healthy", message: undefined },
      eth2: { health: "unhealthy", message: "eth2 reports operstate lowerlayerdown (no carrier or lower device down)" },
    });
  });

  it("reports a device in a pod by its carrier there, and a device the workload set down as healthy", () => {
    const inPod = (name: string) => report(name, { attached: true, operState: "up" });
    const podLinks = new Map<string, PodLinkState>([
      ["eth1", { up: true, carrier: true }],
      ["eth2", { up: true, carrier: false }],
      ["eth3", { up: false, carrier: false }],
      ["eth4", "missing"],
    ]);
    const got = Object.fromEntries(healthOf({ reports: ["eth1", "eth2", "eth3", "eth4", "eth5"].map(inPod) }, POOL, new Map(), podLinks).map((c) => [c.device, c]));
    assert.equal(got.eth1?.health, "healthy");
    assert.deepEqual([got.eth2?.health, got.eth2?.fault], ["unhealthy", "LinkDown"]);
    assert.match(got.eth2?.message ?? "", /eth2 has no carrier in its pod/);
    assert.equal(got.eth3?.health, "healthy", "set down in the pod: no carrier to read, and no fault");
    assert.deepEqual([got.eth4?.health, got.eth4?.fault], ["unhealthy", "DeviceGone"]);
    assert.equal(got.eth5?.health, "healthy", "not polled yet");
  });

  it("names the fault of an unhealthy device on the host, and of one recovery found lost", () => {
    const got = healthOf({ reports: [report("eth1", { operState: "lowerlayerdown" }), report("eth2", { attached: true })] }, POOL, new Map([["eth2", LOST]]));
    assert.deepEqual(got.map((c) => [c.device, c.fault]), [["eth1", "LinkDown"], ["eth2", "DeviceGone"]]);
  });

  it("reports a device in a pod as what recovery found of its attachment", () => {
    const inPod = (name: string) => report(name, { attached: true, operState: "lowerlayerdown" });
    const got = health([inPod("eth1"), inPod("eth2"), inPod("eth3"), inPod("eth4")], { eth2: LOST, eth3: UNPLACED, eth4: FAILED });
    assert.deepEqual(got.eth1, { health: "healthy", message: undefined }, "attached and found in its pod; the operstate from before the move is stale");
    assert.equal(got.eth2?.health, "unhealthy");
    assert.match(got.eth2.message ?? "", /neither in pod .* nor on the host; the pod runs without this interface/);
    assert.deepEqual(got.eth3, { health: "unknown", message: UNPLACED.error });
    assert.equal(got.eth4?.health, "unknown");
    assert.match(got.eth4.message ?? "", /recovering its attachment failed: .*EBUSY; netclaim tries again/);
  });

  it("keeps a lost device unhealthy when it shows up on the host again, since its pod still runs without it", () => {
    assert.equal(health([report("eth1", { operState: "up" })], { eth1: LOST }).eth1?.health, "unhealthy");
  });

  it("prefers a known fault on the host to an unknown attachment", () => {
    assert.equal(health([report("eth1", { operState: "notpresent" })], { eth1: FAILED }).eth1?.health, "unhealthy");
  });
});

describe("RecoveryFindings", () => {
  it("keeps lasting outcomes by device, and drops one once its attachment is attached again", async () => {
    const engine = new ControlledEngine();
    const findings = new RecoveryFindings();
    const observed = findings.observe(engine);
    await through(engine, observed.recover(), "recover", { "claim-1:eth1": LOST, "claim-2:eth2": UNPLACED, "claim-3:eth3": { outcome: "attached" } });
    assert.deepEqual(findings.byDevice(), new Map([["eth1", LOST], ["eth2", UNPLACED]]));
    await through(engine, observed.retarget(new Map()), "retarget", { "claim-2:eth2": { outcome: "attached" } });
    assert.deepEqual(findings.byDevice(), new Map([["eth1", LOST]]));
  });

  it("drops a finding a recover() pass did not visit (settled since, or detached), but not one a retarget() made during the pass", async () => {
    const engine = new ControlledEngine();
    const findings = new RecoveryFindings();
    const observed = findings.observe(engine);
    await through(engine, observed.recover(), "recover", { "claim-1:eth1": LOST });
    const pass = observed.recover();
    const retarget = observed.retarget(new Map([["claim-2:eth2", "/run/netns/new"]]));
    // The pass skips claim-2:eth2 (retarget holds it) and no longer sees claim-1:eth1.
    await through(engine, retarget, "retarget", { "claim-2:eth2": LOST });
    await through(engine, pass, "recover", {});
    assert.deepEqual([...findings.byDevice().keys()], ["eth2"]);
  });

  it("tells listeners about changes only", async () => {
    const engine = new ControlledEngine();
    const findings = new RecoveryFindings();
    const observed = findings.observe(engine);
    let changes = 0;
    const subscription = findings.onChange(() => changes++);
    await through(engine, observed.recover(), "recover", { "claim-1:eth1": LOST });
    await through(engine, observed.recover(), "recover", { "claim-1:eth1": LOST, "claim-3:eth3": { outcome: "attached" } });
    assert.equal(changes, 1);
    await through(engine, observed.recover(), "recover", { "claim-1:eth1": { outcome: "gone" } });
    assert.equal(changes, 2);
    subscription[Symbol.dispose]();
  });
});

describe("InventoryHealth", () => {
  it("reports a device that recovery found lost as unhealthy, at once, and healthy once it is attached again", async () => {
    const runs: Map<string, RecoveryResult>[] = [new Map([["claim-1:eth1", LOST]]), new Map([["claim-1:eth1", { outcome: "attached" }]])];
    const engine: RecoveryEngine = {
      recover: () => Promise.resolve(runs.shift() ?? new Map()),
      retarget: () => Promise.resolve(new Map()),
      attachments: () => Promise.resolve(["claim-1:eth1"]),
    };
    const findings = new RecoveryFindings();
    const recovery = new AttachmentRecovery({
      engine: findings.observe(engine),
      owners: () => Promise.resolve(new Map()),
      status: { setDevice: () => undefined, event: () => undefined },
      logger: pino({ level: "silent" }),
      onRecovered: () => Promise.resolve(),
      onReattached: () => Promise.resolve(),
    });
    const snapshot: InventorySnapshot = { reports: [report("eth0", { operState: "up" }), report("eth1", { attached: true })] };
    const source = new InventoryHealth({ current: () => snapshot, subscribe: () => () => undefined }, POOL, findings);
    let changes = 0;
    const subscription = source.onChange(() => changes++);
    const state = () => source.devices().map((d) => `${d.device}=${d.health}`);

    assert.deepEqual(state(), ["eth0=healthy", "eth1=healthy"]);
    await recovery.run();
    assert.deepEqual(state(), ["eth0=healthy", "eth1=unhealthy"]);
    assert.equal(changes, 1, "the health stream is told at once, not at its next periodic send");
    await recovery.run();
    assert.deepEqual(state(), ["eth0=healthy", "eth1=healthy"]);
    assert.equal(changes, 2);
    subscription[Symbol.dispose]();
  });
});
