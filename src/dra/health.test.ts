import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HealthStatus } from "../gen/kubelet/drahealth/v1/health_pb.js";
import { healthMessage, MutableDeviceHealthSource, serveHealthStream, type DeviceHealthReport } from "./health.ts";

const eth0 = (health: DeviceHealthReport["health"]): DeviceHealthReport => ({ pool: "p", device: "eth0", health });

/** Collects what serveHealthStream sends; `until` decides when to stop the stream. */
async function collect(source: MutableDeviceHealthSource, resendMs: number, until: (sent: string[][]) => boolean, act?: () => void) {
  const controller = new AbortController();
  const sent: string[][] = [];
  await serveHealthStream(
    source,
    {
      send(message) {
        sent.push((message.devices ?? []).map((d) => `${d.device?.deviceName}=${HealthStatus[d.health ?? 0]}`));
        if (sent.length === 1) act?.();
        if (until(sent)) controller.abort();
        return Promise.resolve();
      },
    },
    { signal: controller.signal, resendMs },
  );
  return sent;
}

describe("serveHealthStream", () => {
  it("serveHealthStream sends the full list at once and after each change", async () => {
    const source = new MutableDeviceHealthSource([eth0("healthy")]);
    const sent = await collect(source, 60_000, (s) => s.length === 2, () => {
      setImmediate(() => {
        source.set([eth0("unhealthy"), { pool: "p", device: "eth1", health: "unknown" }]);
      });
    });
    assert.deepEqual(sent, [["eth0=HEALTHY"], ["eth0=UNHEALTHY", "eth1=UNKNOWN"]]);
  });

  it("serveHealthStream sends nothing for a change that leaves every device's health as sent", async () => {
    const source = new MutableDeviceHealthSource([eth0("healthy")]);
    const sent = await collect(source, 60_000, (s) => s.length === 2, () => {
      setImmediate(() => {
        source.set([eth0("healthy")]);
        setImmediate(() => {
          source.set([eth0("unhealthy")]);
        });
      });
    });
    assert.deepEqual(sent, [["eth0=HEALTHY"], ["eth0=UNHEALTHY"]]);
  });

  it("serveHealthStream re-sends the list periodically without changes", async () => {
    const source = new MutableDeviceHealthSource([eth0("healthy")]);
    const sent = await collect(source, 5, (s) => s.length === 4);
    assert.deepEqual(sent, Array(4).fill(["eth0=HEALTHY"]));
  });

  it("serveHealthStream unsubscribes from the source when the stream ends", async () => {
    const source = new MutableDeviceHealthSource([eth0("healthy")]);
    await collect(source, 5, (s) => s.length === 1);
    let notified = 0;
    const probe = source.onChange(() => notified++);
    source.set([]);
    probe[Symbol.dispose]();
    assert.equal(notified, 1); // only the probe: the stream's listener is gone
  });

  it("healthMessage stamps the time and truncates long messages like the kubelet", () => {
    const message = healthMessage([{ ...eth0("unhealthy"), message: "x".repeat(2000), timeoutSeconds: 90 }]);
    const device = message.devices?.[0];
    assert.ok(device !== undefined);
    assert.equal(device.message?.length, 1024);
    assert.ok(device.message.endsWith("..."));
    assert.equal(device.healthCheckTimeoutSeconds, 90n);
    assert.ok(Math.abs(Number(device.lastUpdatedTime) - Date.now() / 1000) < 5);
  });
});
