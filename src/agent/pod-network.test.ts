import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { ClaimState, type JsonValue } from "../dra/index.ts";
import { NriHandlerError, StatusCode, type HandlerContext } from "../nri/index.ts";
import { StateStore } from "../store/index.ts";
import { PodNetwork } from "./pod-network.ts";
import { FakeEngine, pod, podLinks, singleDevicePlan } from "./testdata/pod-network-fakes.ts";
import { settled } from "../common/testdata/settled.ts";

const CLAIM = { namespace: "team-a", name: "nic", uid: "claim-nic" };
const web = pod("web");
const ctx: HandlerContext = { signal: new AbortController().signal };
const container = { id: "c", podSandboxId: web.id, name: "app", state: "created" as const, labels: {}, annotations: {}, pid: 0 };

/** A promise and the functions that settle it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

describe("PodNetwork's RunPodSandbox and the attach's kernel work", () => {
  let dir: string;
  let engine: FakeEngine;
  let statuses: string[];
  let network: PodNetwork;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "netclaim-podnet-"));
    const claims = new ClaimState(await StateStore.open(dir), "netclaim.dev");
    await claims.markPrepared(CLAIM, {
      devices: [{ requestNames: ["nic"], poolName: "worker-1", deviceName: "eth7", cdiDeviceIDs: [] }],
      plan: singleDevicePlan(CLAIM, web, "eth7") as unknown as JsonValue,
    });
    engine = new FakeEngine();
    statuses = [];
    network = new PodNetwork({
      claims,
      engine,
      netlink: podLinks,
      status: { setDevice: (_claim, { device }, state) => statuses.push(`${device}:${state.kind}`), event: () => undefined },
      consumers: { ofClaim: () => Promise.resolve(undefined), ofPod: () => Promise.resolve(new Set<string>()) },
      rdmaMode: "shared",
      nriPluginName: "netclaim",
      recovery: { retarget: () => Promise.resolve() },
      logger: pino({ level: "silent" }),
    });
  });
  afterEach(async () => {
    await network.settle();
    await rm(dir, { recursive: true, force: true });
  });

  it("answers RunPodSandbox before the kernel work ends, and holds the first container until it does", async () => {
    const kernel = deferred();
    engine.kernelWork = () => kernel.promise;
    await network.runPodSandbox(web, ctx);
    assert.equal(engine.begun.length, 1, "checked and journaled before the answer");
    const created = network.createContainer(web, container, ctx);
    assert.equal(await settled(created), false, "the container waits for its interfaces");
    kernel.resolve();
    await created;
    assert.ok(statuses.includes("eth7:attached"));
  });

  it("fails the first container, not the sandbox, when the kernel work fails, and attaches again for the next", async () => {
    engine.kernelWork = () => Promise.reject(new Error("RTNETLINK: device busy"));
    await network.runPodSandbox(web, ctx);
    await assert.rejects(network.createContainer(web, container, ctx), (err: unknown) => {
      assert.ok(err instanceof NriHandlerError);
      assert.equal(err.status, StatusCode.FAILED_PRECONDITION);
      assert.match(err.message, /pod team-a\/web: RTNETLINK: device busy/);
      return true;
    });
    assert.ok(statuses.includes("eth7:failed"));
    assert.equal(engine.begun.length, 2, "the container's own attempt attached again, and failed the same way");
    engine.kernelWork = () => Promise.resolve();
    await network.createContainer(web, container, ctx);
    assert.equal(engine.begun.length, 3, "the kubelet's retry of the container attaches again");
    assert.ok(statuses.includes("eth7:attached"));
  });
});
