import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino, type Logger } from "pino";
import type { ServerVersion } from "../kube/index.ts";
import { agentConfigSchema } from "./config.ts";
import { DeviceTaints, deviceTaintsEnabled, type DeviceConditions } from "./device-taints.ts";
import type { DeviceCondition } from "./inventory-health.ts";

function conditions(list: DeviceCondition[]): DeviceConditions & { set(next: DeviceCondition[]): void } {
  let current = list;
  const listeners = new Set<() => void>();
  return {
    devices: () => current,
    onChange(listener) {
      listeners.add(listener);
      return { [Symbol.dispose]: () => listeners.delete(listener) };
    },
    set(next) {
      current = next;
      for (const listener of listeners) listener();
    },
  };
}

/** A logger whose lines ("<level>: <message>") the test reads. */
function recorder(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger = pino({ formatters: { level: (label) => ({ label }) } }, {
    write: (line: string) => {
      const { label, msg } = JSON.parse(line) as { label: string; msg: string };
      lines.push(`${label}: ${msg}`);
    },
  });
  return Object.assign(logger, { lines });
}

const version = (minor: number, gitVersion = `v1.${String(minor)}.2`) => (): Promise<ServerVersion> => Promise.resolve({ major: 1, minor, gitVersion });

describe("DeviceTaints", () => {
  it("taints each unhealthy device with a known fault, and nothing healthy or unknown", () => {
    const source = conditions([
      { pool: "n", device: "eth1", health: "unhealthy", fault: "LinkDown", message: "no carrier" },
      { pool: "n", device: "eth2", health: "unhealthy", fault: "DeviceGone" },
      { pool: "n", device: "eth3", health: "unknown", message: "pod namespace gone" },
      { pool: "n", device: "eth4", health: "healthy" },
    ]);
    const taints = new DeviceTaints(source, { driverName: "netclaim.dev", effect: "NoExecute" });
    assert.deepEqual(
      taints.current(),
      new Map([
        ["eth1", [{ key: "netclaim.dev/unhealthy", value: "LinkDown", effect: "NoExecute" }]],
        ["eth2", [{ key: "netclaim.dev/unhealthy", value: "DeviceGone", effect: "NoExecute" }]],
      ]),
    );
  });

  it("tells its subscriber of every change in health, until unsubscribed", () => {
    const source = conditions([]);
    const taints = new DeviceTaints(source, { driverName: "netclaim.dev", effect: "NoSchedule" });
    let calls = 0;
    const unsubscribe = taints.subscribe(() => calls++);
    source.set([{ pool: "n", device: "eth1", health: "unhealthy", fault: "LinkDown" }]);
    assert.equal(calls, 1);
    assert.equal(taints.current().get("eth1")?.[0]?.effect, "NoSchedule");
    unsubscribe();
    source.set([]);
    assert.equal(calls, 1);
  });
});

describe("deviceTaintsEnabled", () => {
  const config = (mode?: string) => agentConfigSchema.parse({ nodeName: "n", ...(mode !== undefined && { deviceTaints: { mode } }) }).deviceTaints;

  it("turns taints on from 1.36 in auto mode and says why it is off before", async () => {
    for (const [minor, expected] of [[34, false], [35, false], [36, true], [37, true]] as const) {
      const log = recorder();
      assert.equal(await deviceTaintsEnabled(config(), version(minor), log), expected, `1.${String(minor)}`);
      assert.match(log.lines.join("\n"), expected ? /device taints are on/ : /device taints are off: Kubernetes v1\.\d+\.2 keeps them only with the DRADeviceTaints feature gate/);
    }
  });

  it("obeys on and off without asking the API server", async () => {
    const never = (): Promise<ServerVersion> => Promise.reject(new Error("not asked"));
    assert.equal(await deviceTaintsEnabled(config("on"), never, recorder()), true);
    assert.equal(await deviceTaintsEnabled(config("off"), never, recorder()), false);
  });

  it("keeps taints off, and says how to turn them on, when the release cannot be read", async () => {
    const log = recorder();
    assert.equal(await deviceTaintsEnabled(config(), () => Promise.reject(new Error("connection refused")), log), false);
    assert.match(log.lines[0] ?? "", /^warn: .*device taints are off \(set deviceTaints.mode: on/);
  });

  it("refuses an unknown mode or effect in the configuration", () => {
    assert.throws(() => agentConfigSchema.parse({ deviceTaints: { mode: "yes" } }));
    assert.throws(() => agentConfigSchema.parse({ deviceTaints: { effect: "PreferNoSchedule" } }));
  });
});
