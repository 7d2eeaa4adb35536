import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { decodeDeviceMetadata, publishClaimMetadata } from "../cdi/index.ts";
import { ClaimState, type JsonValue } from "../dra/index.ts";
import { NriHandlerError, StatusCode, type HandlerContext } from "../nri/index.ts";
import { StateStore } from "../store/index.ts";
import { attachmentKey, PodNetwork } from "./pod-network.ts";
import { FakeEngine, pod, podLink, podLinksOf, POD_LINKS, singleDevicePlan } from "./testdata/pod-network-fakes.ts";
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
  let metadataFile: string;
  let claims: ClaimState;
  let engine: FakeEngine;
  let statuses: string[];
  let network: PodNetwork;

  /** Prepares the claim's eth7 for web, its pod-side name `data0` unless `interfaceName` says otherwise (null: netclaim's choice). */
  async function prepare(interfaceName: string | null = "data0"): Promise<void> {
    const plan = singleDevicePlan(CLAIM, web, "eth7");
    const devices = plan.devices.map((d) => {
      const { addresses, sysctls } = d.interface;
      return { ...d, metadataFile, interface: interfaceName === null ? { addresses, sysctls } : { name: interfaceName, addresses, sysctls } };
    });
    await claims.markPrepared(CLAIM, {
      devices: [{ requestNames: ["nic"], poolName: "worker-1", deviceName: "eth7", cdiDeviceIDs: [] }],
      plan: { ...plan, devices } as unknown as JsonValue,
    });
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "netclaim-podnet-"));
    const published = await publishClaimMetadata({ dir: join(dir, "metadata"), specDir: join(dir, "cdi") }, "netclaim.dev", CLAIM, [{ request: "nic", pool: "worker-1", name: "eth7" }]);
    metadataFile = published.get("eth7")?.file ?? "";
    claims = new ClaimState(await StateStore.open(dir), "netclaim.dev");
    await prepare();
    engine = new FakeEngine();
    statuses = [];
    network = new PodNetwork({
      claims,
      engine,
      netlink: podLinksOf(engine),
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

  it("counts a device as in its pod from the start of its attach, when the journal is read again before it lists the device", async () => {
    const check = deferred();
    engine.checkWork = () => check.promise;
    const sandbox = network.runPodSandbox(web, ctx);
    while (engine.begun.length === 0) await new Promise((resolve) => setImmediate(resolve));
    // Another pod's attach or detach ends meanwhile and reads the journal again: eth7 is not in it yet.
    await network.refreshAttached();
    assert.ok(network.attachedDevices().has("eth7"), "eth7 may leave the host any moment: a host scan must not drop it");
    check.resolve();
    await sandbox;
    await network.createContainer(web, container, ctx);
    assert.ok(network.attachedDevices().has("eth7"), "attached, the journal lists it");
    assert.ok(statuses.includes("eth7:attached"));
  });

  it("begins a new sandbox's attach without reading its links or journal first: names against the Multus annotation, checked by the engine", async () => {
    await network.runPodSandbox(web, ctx);
    assert.deepEqual(engine.begun.map((plans) => plans.map((p) => p.podName)), [["data0"]]);
    assert.equal(engine.toldPodLinks, 0, "the engine's check listed the pod's links itself");
    assert.equal(engine.attachedAsked, 0);
    await network.createContainer(web, container, ctx);
    assert.ok(statuses.includes("eth7:attached"));
  });

  it("names the device again against the pod's links when the engine finds the guessed name taken", async () => {
    await prepare(null);
    // nc0 is in the pod although no Multus network promised it: netclaim's first choice collides.
    engine.podLinks = [...POD_LINKS, podLink("nc0", 3)];
    await network.runPodSandbox(web, ctx);
    assert.deepEqual(engine.begun.map((plans) => plans.map((p) => p.podName)), [["nc0"], ["nc1"]]);
    assert.equal(engine.toldPodLinks, 1, "the second attempt names against the links read");
    await network.createContainer(web, container, ctx);
    assert.deepEqual(statuses.filter((s) => s.endsWith("failed")), []);
    assert.ok(statuses.includes("eth7:attached"));
  });

  it("fails the sandbox with the naming error when the name asked for is taken in the pod", async () => {
    engine.podLinks = [...POD_LINKS, podLink("data0", 3)];
    await assert.rejects(network.runPodSandbox(web, ctx), (err: unknown) => {
      assert.ok(err instanceof NriHandlerError);
      assert.match(err.message, /data0.*an interface already in the pod/);
      return true;
    });
    assert.equal(engine.begun.length, 1, "only the guess reached the engine");
    assert.ok(statuses.includes("eth7:failed"));
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

  it("writes what recovery attached again into the device's metadata file", async () => {
    const networkData = (): Promise<unknown> => readFile(metadataFile, "utf8").then((text) => decodeDeviceMetadata(text, metadataFile).devices[0]?.networkData);
    assert.equal(await networkData(), undefined, "prepare writes no interface");
    await network.recordReattached([{ key: attachmentKey(CLAIM.uid, "eth7"), podName: "data0", ifindex: 9, mac: "02:00:00:00:00:07", addresses: ["198.51.100.7/24"] }]);
    assert.deepEqual(await networkData(), { interfaceName: "data0", ips: ["198.51.100.7/24"], hardwareAddress: "02:00:00:00:00:07" });
    await network.recordReattached([{ key: attachmentKey("another-claim", "eth7"), podName: "data9", ifindex: 9, mac: undefined, addresses: [] }]);
    assert.equal(((await networkData()) as { interfaceName: string }).interfaceName, "data0", "an attachment of no prepared claim writes nothing");
  });
});
