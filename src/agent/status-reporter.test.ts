import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import type { AllocatedDeviceStatus } from "../claims/status.ts";
import { KubeApiError, type KubeClient } from "../kube/index.ts";
import { ClaimStatusReporter, type StatusReporterOptions } from "./status-reporter.ts";

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

/** A reporter of an agent that had prepared no claim before it started, unless `options` say otherwise. */
function reporter(client: KubeClient, coalesceMs: number, options: Partial<StatusReporterOptions> = {}): ClaimStatusReporter {
  return new ClaimStatusReporter({
    client,
    driverName: "netclaim.dev",
    poolName: "worker-1",
    logger: pino({ level: "silent" }),
    coalesceMs,
    earlierClaims: () => Promise.resolve([]),
    ...options,
  });
}

function summary(devices: readonly AllocatedDeviceStatus[]): string[] {
  return devices.map((d) => `${d.driver}/${d.device}=${d.networkData?.interfaceName ?? d.conditions[0]?.reason ?? ""}`).sort();
}

const CLAIM_PATH = "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/web-0-nic";

function entry(device: string, interfaceName: string, since: string, ref: { driver: string; pool: string } = { driver: "netclaim.dev", pool: "worker-1" }): AllocatedDeviceStatus {
  return {
    ...ref,
    device,
    conditions: [{ type: "Ready", status: "True", reason: "InterfaceAttached", message: `${interfaceName} attached and configured`, lastTransitionTime: since }],
    networkData: { interfaceName, ips: [] },
  };
}

/**
 * One ResourceClaim as the API server keeps it, with server-side apply as
 * our field manager sees it: an apply's `status.devices` become exactly the
 * entries of our driver and pool (the ones we own), others stay.
 */
function claimServer(devices: AllocatedDeviceStatus[], uid = claim.uid) {
  const requests: { method: string; path: string }[] = [];
  const state = { devices };
  const client = {
    request(method: string, path: string, options: { body?: { status: { devices: AllocatedDeviceStatus[] } } } = {}) {
      requests.push({ method, path });
      if (method === "GET" && path === CLAIM_PATH) {
        return Promise.resolve({ metadata: { namespace: claim.namespace, name: claim.name, uid }, status: { devices: state.devices } });
      }
      if (method === "PATCH" && path === `${CLAIM_PATH}/status` && options.body !== undefined) {
        const ours = (d: AllocatedDeviceStatus) => d.driver === "netclaim.dev" && d.pool === "worker-1";
        state.devices = [...state.devices.filter((d) => !ours(d)), ...options.body.status.devices];
        return Promise.resolve({});
      }
      return Promise.reject(new KubeApiError("KUBE_API", { method, path, status: 404, reason: "NotFound", message: "not found" }));
    },
  } as unknown as KubeClient;
  return { client, requests, state };
}

describe("ClaimStatusReporter", () => {
  it("makes one write of the newest state for changes that come close together", async () => {
    const { client, writes } = recordingClient();
    const status = reporter(client, 100);
    status.start();
    status.setDevice(claim, { device: "eth1" }, { kind: "prepared" });
    await sleep(10);
    status.setDevice(claim, { device: "eth1" }, { kind: "attached", interfaceName: "data0", addresses: ["198.51.100.5/24"], late: false });
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
    status.setDevice(claim, { device: "eth1" }, { kind: "prepared" });
    const started = performance.now();
    await status.close();
    assert.ok(performance.now() - started < 5_000, "close did not wait out the coalescing delay");
    assert.equal(writes.length, 1);
  });

  it("keeps the other entries of a claim that an earlier agent wrote when it reports one device after a restart", async () => {
    const other = entry("gpu-0", "ib0", "2026-01-01T00:00:00Z", { driver: "gpu.example.com", pool: "worker-1" });
    const api = claimServer([entry("eth1", "nc0", "2026-01-01T00:00:00Z"), entry("eth2", "nc1", "2026-01-01T00:00:00Z"), other]);
    // A new agent: nothing in memory about this claim, which an earlier agent prepared.
    const status = reporter(api.client, 0, { earlierClaims: () => Promise.resolve([claim]) });
    status.start();
    status.setDevice(claim, { device: "eth1" }, { kind: "attached", interfaceName: "nc0", addresses: [], late: false });
    await status.close();
    assert.deepEqual(
      summary(api.state.devices),
      ["gpu.example.com/gpu-0=ib0", "netclaim.dev/eth1=nc0", "netclaim.dev/eth2=nc1"],
      "the apply after the restart removed an entry of ours it did not mention",
    );
    const eth1 = api.state.devices.find((d) => d.device === "eth1");
    assert.equal(eth1?.conditions[0]?.lastTransitionTime, "2026-01-01T00:00:00Z", "Ready stayed True, so its transition time stays");
    assert.deepEqual(api.requests.map((r) => r.method), ["GET", "PATCH"], "the claim is read once, before its first write");
  });

  it("writes a claim prepared since the start without reading it first", async () => {
    const api = claimServer([]);
    const status = reporter(api.client, 0);
    status.start();
    status.setDevice(claim, { device: "eth1" }, { kind: "prepared" });
    status.setDevice(claim, { device: "eth2" }, { kind: "prepared" });
    await status.close();
    assert.deepEqual(api.requests.map((r) => r.method), ["PATCH"]);
    assert.deepEqual(summary(api.state.devices), ["netclaim.dev/eth1=Prepared", "netclaim.dev/eth2=Prepared"]);
  });

  it("reads every claim before its first write when the earlier claims cannot be listed", async () => {
    const api = claimServer([entry("eth1", "nc0", "2026-01-01T00:00:00Z"), entry("eth2", "nc1", "2026-01-01T00:00:00Z")]);
    const status = reporter(api.client, 0, { earlierClaims: () => Promise.reject(new Error("state record unreadable")) });
    status.start();
    status.setDevice(claim, { device: "eth2" }, { kind: "failed", reason: "DeviceLost", message: "gone" });
    await status.close();
    assert.deepEqual(summary(api.state.devices), ["netclaim.dev/eth1=nc0", "netclaim.dev/eth2=DeviceLost"]);
  });

  it("removes every entry of ours at unprepare without reading the claim", async () => {
    const api = claimServer([entry("eth1", "nc0", "2026-01-01T00:00:00Z"), entry("eth2", "nc1", "2026-01-01T00:00:00Z")]);
    const status = reporter(api.client, 0, { earlierClaims: () => Promise.resolve([claim]) });
    status.start();
    status.clearClaim(claim);
    await status.close();
    assert.deepEqual(api.requests.map((r) => r.method), ["PATCH"]);
    assert.deepEqual(api.state.devices, []);
  });

  it("does not write a claim that was recreated under the same name", async () => {
    const api = claimServer([entry("eth1", "nc0", "2026-01-01T00:00:00Z")], "another-uid");
    const status = reporter(api.client, 0, { earlierClaims: () => Promise.resolve([claim]) });
    status.start();
    status.setDevice(claim, { device: "eth1" }, { kind: "prepared" });
    await status.close();
    assert.deepEqual(api.requests.map((r) => r.method), ["GET"]);
  });
});
