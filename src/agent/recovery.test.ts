import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import type { DeviceState } from "../claims/status.ts";
import type { AttachResult, RecoveryResult } from "../engine/index.ts";
import type { EventTarget } from "../kube/index.ts";
import { AttachmentRecovery, type AttachmentOwner } from "./recovery.ts";

const owner: AttachmentOwner = {
  claim: { namespace: "default", name: "web-0-nic", uid: "claim-1" },
  pod: { namespace: "default", name: "web-0", uid: "pod-1" },
  device: "eth1",
};
const KEY = "claim-1:eth1";
const LOST: RecoveryResult = { outcome: "lost", error: "attachment claim-1:eth1, device eth1, step move: device eth1 is neither in pod /run/netns/x nor on the host" };

/** An engine whose recover() answers from a script, one entry per run; the journal holds the keys of the last answer. */
class ScriptedEngine {
  readonly runs: (Map<string, RecoveryResult> | Error)[];
  calls = 0;
  /** What retarget() answers, and what it was asked. */
  retargeted = new Map<string, RecoveryResult>();
  readonly targets: ReadonlyMap<string, string>[] = [];
  #journal: string[] = [];

  constructor(runs: (Map<string, RecoveryResult> | Error)[]) {
    this.runs = runs;
  }

  recover(): Promise<Map<string, RecoveryResult>> {
    const run = this.runs[this.calls++] ?? new Map<string, RecoveryResult>();
    if (run instanceof Error) return Promise.reject(run);
    this.#journal = [...run].filter(([, r]) => r.outcome !== "restored" && r.outcome !== "gone").map(([key]) => key);
    return Promise.resolve(run);
  }

  retarget(targets: ReadonlyMap<string, string>): Promise<Map<string, RecoveryResult>> {
    this.targets.push(targets);
    return Promise.resolve(this.retargeted);
  }

  attachments(): Promise<string[]> {
    return Promise.resolve(this.#journal);
  }
}

class RecordingStatus {
  readonly devices: { claim: string; device: string; state: DeviceState }[] = [];
  readonly events: { target: EventTarget; type: string; reason: string; message: string }[] = [];

  setDevice(claim: { name: string }, { device }: { device: string }, state: DeviceState): void {
    this.devices.push({ claim: claim.name, device, state });
  }

  event(target: EventTarget, type: "Normal" | "Warning", reason: string, message: string): void {
    this.events.push({ target, type, reason, message });
  }
}

function recovery(engine: ScriptedEngine, status: RecordingStatus): { recovery: AttachmentRecovery; refreshed: () => number; reattached: AttachResult[][] } {
  let refreshes = 0;
  const reattached: AttachResult[][] = [];
  const r = new AttachmentRecovery({
    engine,
    owners: () => Promise.resolve(new Map([[KEY, owner]])),
    status,
    logger: pino({ level: "silent" }),
    onRecovered: () => {
      refreshes += 1;
      return Promise.resolve();
    },
    onReattached: (attached) => {
      reattached.push([...attached]);
      return Promise.resolve();
    },
  });
  return { recovery: r, refreshed: () => refreshes, reattached };
}

describe("AttachmentRecovery", () => {
  it("reports a lost device once as DeviceLost on its claim and a Warning event on its pod, and again once it is forgotten and lost anew", async () => {
    const engine = new ScriptedEngine([new Map([[KEY, LOST]]), new Map([[KEY, LOST]]), new Map([[KEY, { outcome: "gone" }]]), new Map([[KEY, LOST]])]);
    const status = new RecordingStatus();
    const { recovery: r, refreshed } = recovery(engine, status);
    await r.run();
    assert.equal(status.devices.length, 1);
    const [device] = status.devices;
    assert.ok(device?.state.kind === "failed");
    assert.equal(device.device, "eth1");
    assert.equal(device.state.reason, "DeviceLost");
    assert.match(device.state.message, /neither in pod .* nor on the host; the pod runs without this interface, and netclaim forgets the attachment when the pod is deleted/);
    assert.deepEqual(status.events.map((e) => [e.target.kind, e.target.name, e.type, e.reason]), [["Pod", "web-0", "Warning", "NetworkDeviceLost"]]);
    await r.run();
    assert.equal(status.devices.length + status.events.length, 2, "a lasting loss is not reported on every run");
    await r.run();
    await r.run();
    assert.equal(status.events.length, 2, "a new loss after the record was forgotten is news again");
    assert.equal(refreshed(), 4);
  });

  it("reports a failed recovery as AttachFailed, and the claim as attached once a later run succeeds", async () => {
    const attached: RecoveryResult = { outcome: "attached", attached: { key: KEY, podName: "net1", ifindex: 7, mac: "02:00:00:00:00:01", addresses: ["198.51.100.5/24"] } };
    const engine = new ScriptedEngine([
      new Map([[KEY, { outcome: "failed", error: "attachment claim-1:eth1, device eth1, step configure: EINVAL" }]]),
      new Map([[KEY, attached]]),
      new Map([[KEY, attached]]),
    ]);
    const status = new RecordingStatus();
    const { recovery: r } = recovery(engine, status);
    await r.run();
    assert.ok(status.devices[0]?.state.kind === "failed");
    assert.equal(status.devices[0].state.reason, "AttachFailed");
    assert.match(status.devices[0].state.message, /step configure: EINVAL; netclaim tries again/);
    assert.equal(status.events[0]?.reason, "NetworkDeviceAttachFailed");
    await r.run();
    await r.run();
    assert.deepEqual(status.devices.map((d) => d.state.kind), ["failed", "attached"], "attached is reported once, after the failure, and not on every run");
  });

  it("hands every attachment a run put in its pod to onReattached, on every run and after a retarget, whatever the claim was told", async () => {
    const result = { key: KEY, podName: "net1", ifindex: 7, mac: "02:00:00:00:00:01", addresses: ["198.51.100.5/24"] };
    const engine = new ScriptedEngine([new Map([[KEY, { outcome: "attached", attached: result }], ["claim-2:eth2", { outcome: "restored" }]]), new Map([[KEY, LOST]])]);
    const status = new RecordingStatus();
    const { recovery: r, reattached } = recovery(engine, status);
    await r.run();
    assert.deepEqual(reattached, [[result]]);
    assert.equal(status.devices.length, 0, "an attach recovery finished is no news to the claim");
    await r.run();
    assert.deepEqual(reattached, [[result], []], "a lost device has no interface to write");
    engine.retargeted = new Map([[KEY, { outcome: "attached", attached: { ...result, podName: "net2" } }]]);
    await r.retarget(new Map([[KEY, "/run/netns/new"]]));
    assert.deepEqual(reattached.at(-1), [{ ...result, podName: "net2" }]);
  });

  it("reports nothing on the claim for an unplaced device until the runtime says where its pod runs, then what the engine found there", async () => {
    const engine = new ScriptedEngine([new Map([[KEY, { outcome: "unplaced", error: "device eth1: pod namespace /run/netns/old is gone" }]])]);
    const status = new RecordingStatus();
    const { recovery: r } = recovery(engine, status);
    await r.run();
    assert.equal(status.devices.length + status.events.length, 0, "most often the pod was deleted while the agent was away");
    await r.retarget(new Map());
    assert.equal(engine.targets.length, 0, "nothing to point anywhere: no call");
    engine.retargeted = new Map([[KEY, LOST]]);
    await r.retarget(new Map([[KEY, "/run/netns/new"]]));
    assert.deepEqual(engine.targets, [new Map([[KEY, "/run/netns/new"]])]);
    assert.ok(status.devices[0]?.state.kind === "failed");
    assert.equal(status.devices[0].state.reason, "DeviceLost");
    assert.equal(status.events[0]?.reason, "NetworkDeviceLost");
  });

  it("survives a recovery that throws, and runs again when asked", async () => {
    const engine = new ScriptedEngine([new Error("journal unreadable"), new Map([[KEY, LOST]])]);
    const status = new RecordingStatus();
    const { recovery: r } = recovery(engine, status);
    await r.run();
    assert.equal(status.devices.length, 0);
    await r.run();
    assert.equal(status.devices.length, 1);
  });

  it("runs once more after the run in progress when asked during it, however often, and close() waits for it", async () => {
    const engine = new ScriptedEngine([]);
    const { recovery: r, refreshed } = recovery(engine, new RecordingStatus());
    const first = r.run();
    r.request();
    r.request();
    const second = r.run();
    await first;
    await second;
    assert.equal(engine.calls, 2);
    r.request();
    await r.close();
    assert.equal(refreshed(), 3, "the requested run had finished when close() resolved");
    r.request();
    assert.equal(engine.calls, 3, "nothing runs after close");
  });
});
