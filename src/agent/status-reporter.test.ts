import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import type { KubeClient } from "../kube/index.ts";
import { ClaimStatusReporter } from "./status-reporter.ts";

interface Write {
  method: string;
  path: string;
  body: unknown;
}

/** Records the API requests the reporter makes; every one succeeds. */
function recordingClient(): { client: KubeClient; writes: Write[] } {
  const writes: Write[] = [];
  const client = {
    request(method: string, path: string, options: { body?: unknown } = {}) {
      writes.push({ method, path, body: options.body });
      return Promise.resolve({});
    },
  } as unknown as KubeClient;
  return { client, writes };
}

const claim = { namespace: "default", name: "web-0-nic", uid: "claim-uid-1" };

function reporter(client: KubeClient, coalesceMs: number): ClaimStatusReporter {
  return new ClaimStatusReporter({ client, driverName: "netclaim.dev", poolName: "worker-1", logger: pino({ level: "silent" }), coalesceMs });
}

describe("ClaimStatusReporter", () => {
  it("makes one write of the newest state for changes that come close together", async () => {
    const { client, writes } = recordingClient();
    const status = reporter(client, 100);
    status.start();
    status.setDevice(claim, "eth1", { kind: "prepared" });
    await sleep(10);
    status.setDevice(claim, "eth1", { kind: "attached", interfaceName: "data0", addresses: ["198.51.100.5/24"], late: false });
    assert.equal(writes.length, 0, "nothing is written while changes may still follow");
    await sleep(300);
    assert.equal(writes.length, 1);
    const [write] = writes;
    assert.ok(write);
    assert.equal(write.method, "PATCH");
    assert.equal(write.path, "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/web-0-nic/status");
    assert.match(JSON.stringify(write.body), /"interfaceName":"data0"/);
    await status.close();
  });

  it("writes what is pending at once when it closes", async () => {
    const { client, writes } = recordingClient();
    const status = reporter(client, 60_000);
    status.start();
    status.setDevice(claim, "eth1", { kind: "prepared" });
    const started = performance.now();
    await status.close();
    assert.ok(performance.now() - started < 5_000, "close did not wait out the coalescing delay");
    assert.equal(writes.length, 1);
  });
});
