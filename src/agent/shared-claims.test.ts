import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import type { ClaimPlan } from "../claims/plan.ts";
import { ClaimState, type JsonValue } from "../dra/index.ts";
import { NriHandlerError, StatusCode, type HandlerContext, type PodSandboxInfo } from "../nri/index.ts";
import { StateStore } from "../store/index.ts";
import { PodNetwork } from "./pod-network.ts";
import { SharedClaimReason } from "./shared-claims.ts";
import { FakeEngine, pod, podLinksOf, singleDevicePlan as plan } from "./testdata/pod-network-fakes.ts";

const NS = "team-a";
const ctx: HandlerContext = { signal: new AbortController().signal };
const CLAIM = { namespace: NS, name: "shared-nic", uid: "claim-shared" };

interface Event {
  kind: string;
  name: string;
  type: string;
  reason: string;
  message: string;
}

describe("PodNetwork with a claim two pods share", () => {
  let dir: string;
  let claims: ClaimState;
  let engine: FakeEngine;
  let events: Event[];
  /** status.reservedFor by claim UID, as the API server has it now. */
  let reservedFor: Map<string, string[]>;
  let reads: string[];
  /** Pods read for the claims they consume, and claim names by UID for those reads. */
  let podReads: string[];
  let podReadError: Error | undefined;
  let claimNames: Map<string, string>;
  let readError: Error | undefined;
  let warnings: { msg: string }[];
  let network: PodNetwork;
  const holder = pod("holder");
  const second = pod("second");

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "netclaim-shared-"));
    claims = new ClaimState(await StateStore.open(dir), "netclaim.dev");
    engine = new FakeEngine();
    events = [];
    reservedFor = new Map();
    reads = [];
    podReads = [];
    podReadError = undefined;
    claimNames = new Map();
    readError = undefined;
    warnings = [];
    network = new PodNetwork({
      claims,
      engine,
      netlink: podLinksOf(engine),
      status: {
        setDevice: () => undefined,
        event: (target, type, reason, message) => events.push({ kind: target.kind, name: target.name, type, reason, message }),
      },
      consumers: {
        ofClaim: (ref) => {
          reads.push(ref.name);
          if (readError !== undefined) return Promise.reject(readError);
          return Promise.resolve(reservedFor.get(ref.uid));
        },
        ofPod: (consumer) => {
          podReads.push(consumer.name);
          if (podReadError !== undefined) return Promise.reject(podReadError);
          return Promise.resolve(new Set([...reservedFor].filter(([, uids]) => uids.includes(consumer.uid)).map(([uid]) => claimNames.get(uid) ?? uid)));
        },
      },
      rdmaMode: "shared",
      nriPluginName: "netclaim",
      recovery: { retarget: () => Promise.resolve() },
      logger: pino({ level: "warn" }, { write: (line: string) => warnings.push(JSON.parse(line) as { msg: string }) }),
    });
    await prepare(CLAIM, holder, "eth7");
    reservedFor.set(CLAIM.uid, [holder.uid]);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** `podClaims`: the claims of the pod a prepare that read it recorded. */
  async function prepare(claim: typeof CLAIM, forPod: PodSandboxInfo, device: string, podClaims?: string[]): Promise<void> {
    claimNames.set(claim.uid, claim.name);
    const stored = { ...plan(claim, forPod, device), ...(podClaims !== undefined && { podClaims }) };
    await claims.markPrepared(claim, { devices: [{ requestNames: ["nic"], poolName: "worker-1", deviceName: device, cdiDeviceIDs: [] }], plan: stored as unknown as JsonValue });
  }

  async function storedHolder(): Promise<string | undefined> {
    const record = await claims.get(CLAIM);
    return record?.state === "prepared" ? (record.plan as unknown as ClaimPlan).pod.uid : undefined;
  }

  const refusal = (status: number, message: RegExp) => (err: unknown) => {
    assert.ok(err instanceof NriHandlerError, String(err));
    assert.equal(err.status, status);
    assert.match(err.message, message);
    return true;
  };

  it("refuses the second pod's sandbox, naming the claim and the holder, with a Warning event; the holder keeps its device", async () => {
    await network.runPodSandbox(holder, ctx);
    assert.deepEqual(engine.begun.map((b) => b.map((p) => p.netns)), [[holder.netnsPath]]);
    reservedFor.set(CLAIM.uid, [holder.uid, second.uid]);

    await assert.rejects(
      network.runPodSandbox(second, ctx),
      refusal(StatusCode.FAILED_PRECONDITION, /^netclaim refuses pod team-a\/second: claim team-a\/shared-nic \(device eth7\) is in use by pod team-a\/holder \(uid uid-holder\)/),
    );
    assert.equal(engine.begun.length, 1, "nothing is attached for the second pod");
    assert.deepEqual([...engine.journal], [[`${CLAIM.uid}:eth7`, holder.netnsPath]], "the device stays in the holder");
    assert.equal(await storedHolder(), holder.uid);
    const onPod = events.find((e) => e.kind === "Pod" && e.name === "second");
    assert.equal(onPod?.type, "Warning");
    assert.equal(onPod.reason, SharedClaimReason.InUse);
    assert.match(onPod.message, /a claim of its own with a ResourceClaimTemplate/);
    assert.ok(events.some((e) => e.kind === "ResourceClaim" && e.name === CLAIM.name && e.reason === SharedClaimReason.InUse), "the claim has the event too");
    assert.ok(!events.some((e) => e.name === "holder"), "nothing is said about the holder");
  });

  it("puts the devices of a refused pod's own claims back before its sandbox fails", async () => {
    await network.runPodSandbox(holder, ctx);
    const own = { namespace: NS, name: "second-nic", uid: "claim-second" };
    await prepare(own, second, "eth8");
    reservedFor.set(CLAIM.uid, [holder.uid, second.uid]);
    await assert.rejects(network.runPodSandbox(second, ctx), refusal(StatusCode.FAILED_PRECONDITION, /in use by pod team-a\/holder/));
    assert.deepEqual([...engine.journal.keys()], [`${CLAIM.uid}:eth7`], "the holder keeps its device; the refused pod keeps none");
    assert.ok(engine.begun.some((inputs) => inputs.some((i) => i.key === `${own.uid}:eth8`)), "its own device attached while the claims were read");
  });

  it("refuses a container of the second pod when this agent did not see its sandbox start", async () => {
    await network.runPodSandbox(holder, ctx);
    reservedFor.set(CLAIM.uid, [holder.uid, second.uid]);
    await assert.rejects(network.createContainer(second, { id: "c", podSandboxId: second.id, name: "app", state: "created", labels: {}, annotations: {}, pid: 0 }, ctx), refusal(StatusCode.FAILED_PRECONDITION, /is in use by pod team-a\/holder/));
    assert.equal(engine.begun.length, 1);
  });

  it("hands the claim over once the holder is gone and its device is back on the host, and not before", async () => {
    await network.runPodSandbox(holder, ctx);
    reservedFor.set(CLAIM.uid, [holder.uid, second.uid]);
    await assert.rejects(network.runPodSandbox(second, ctx), refusal(StatusCode.FAILED_PRECONDITION, /in use by pod team-a\/holder/));

    // The holder was deleted (no longer reserved), but its sandbox has not been stopped yet.
    reservedFor.set(CLAIM.uid, [second.uid]);
    await assert.rejects(network.runPodSandbox(second, ctx), refusal(StatusCode.UNAVAILABLE, /still on its way back to the host/));
    assert.equal(await storedHolder(), holder.uid);

    await network.stopPodSandbox(holder);
    assert.equal(engine.journal.size, 0, "the holder's device is back on the host");
    await network.runPodSandbox(second, ctx);
    assert.deepEqual(engine.begun.at(-1)?.map((p) => [p.key, p.netns]), [[`${CLAIM.uid}:eth7`, second.netnsPath]]);
    assert.equal(await storedHolder(), second.uid, "the stored plan names the new holder");
    assert.ok(events.some((e) => e.name === "second" && e.type === "Normal" && e.reason === SharedClaimReason.HandedOver));

    // The old holder's sandbox removal comes late: it must not take the device from the new one.
    await network.removePodSandbox(holder);
    assert.deepEqual([...engine.journal], [[`${CLAIM.uid}:eth7`, second.netnsPath]]);
  });

  it("hands the claim over at CreateContainer when the sandbox started while the holder still had it", async () => {
    reservedFor.set(CLAIM.uid, [second.uid]);
    await network.createContainer(second, { id: "c", podSandboxId: second.id, name: "app", state: "created", labels: {}, annotations: {}, pid: 0 }, ctx);
    assert.deepEqual(engine.begun.map((b) => b.map((p) => p.netns)), [[second.netnsPath]], "attached before the container is created");
    assert.equal(await storedHolder(), second.uid);
  });

  it("asks the API server only about claims another pod holds in the pod's namespace, and never for static pods", async () => {
    await prepare({ namespace: "team-b", name: "other", uid: "claim-other" }, pod("elsewhere", { namespace: "team-b" }), "eth8");
    await network.runPodSandbox(holder, ctx);
    assert.deepEqual(reads, [], "the holder's own claim is not read");
    await network.runPodSandbox(pod("plain", { namespace: "team-c" }), ctx);
    assert.deepEqual(reads, [], "no claim in team-c: no request");
    await network.runPodSandbox(pod("static", { annotations: { "kubernetes.io/config.source": "file" } }), ctx);
    assert.deepEqual(reads, [], "a static pod cannot consume claims");

    assert.deepEqual(podReads, []);

    const neighbour = pod("neighbour");
    await network.runPodSandbox(neighbour, ctx);
    assert.deepEqual(podReads, ["neighbour"], "a pod in the holder's namespace is read once for the claims it consumes");
    assert.deepEqual(reads, [], "and consumes none of the claims others hold: none is read");
    const container = { id: "c", podSandboxId: neighbour.id, name: "app", state: "created" as const, labels: {}, annotations: {}, pid: 0 };
    await network.createContainer(neighbour, container, ctx);
    assert.deepEqual([podReads, reads], [["neighbour"], []], "an admitted sandbox's containers cost nothing");

    await network.runPodSandbox(holder, ctx);
    reservedFor.set(CLAIM.uid, [holder.uid, second.uid]);
    await assert.rejects(network.runPodSandbox(second, ctx), refusal(StatusCode.FAILED_PRECONDITION, /in use by pod team-a\/holder/));
    assert.deepEqual(reads, ["shared-nic"], "a pod that consumes a claim another pod holds: that claim is read too");
  });

  it("takes the claims a pod consumes from its own claim's plan where the prepare recorded them, and reads no pod", async () => {
    await network.runPodSandbox(holder, ctx);
    const neighbour = pod("neighbour");
    await prepare({ namespace: "team-a", name: "neighbour-nic", uid: "claim-neighbour" }, neighbour, "eth8", ["neighbour-nic"]);
    await network.runPodSandbox(neighbour, ctx);
    assert.deepEqual([podReads, reads], [[], []], "it consumes none of the claims others hold, as its plan says");

    await prepare({ namespace: "team-a", name: "second-nic", uid: "claim-second" }, second, "eth9", ["second-nic", CLAIM.name]);
    reservedFor.set(CLAIM.uid, [holder.uid, second.uid]);
    await assert.rejects(network.runPodSandbox(second, ctx), refusal(StatusCode.FAILED_PRECONDITION, /in use by pod team-a\/holder/));
    assert.deepEqual([podReads, reads], [[], [CLAIM.name]], "the shared claim, which its plan names, is read; the pod is not");
  });

  it("hands a claim over without the claims its previous holder consumed", async () => {
    await prepare(CLAIM, holder, "eth7", [CLAIM.name, "holder-extra"]);
    reservedFor.set(CLAIM.uid, [second.uid]);
    await network.runPodSandbox(second, ctx);
    const record = await claims.get(CLAIM);
    const stored = record?.state === "prepared" ? (record.plan as unknown as ClaimPlan) : undefined;
    assert.equal(stored?.pod.uid, second.uid);
    assert.equal(stored.podClaims, undefined, "the holder's claims are not the new pod's");
  });

  it("reads every claim other pods hold in the namespace when the pod cannot be read", async () => {
    podReadError = new Error("the server was unable to return a response in the time allotted");
    reservedFor.set(CLAIM.uid, [holder.uid, second.uid]);
    await network.runPodSandbox(holder, ctx);
    await assert.rejects(network.runPodSandbox(second, ctx), refusal(StatusCode.FAILED_PRECONDITION, /in use by pod team-a\/holder/));
    assert.deepEqual(reads, ["shared-nic"]);
  });

  it("refuses, for the kubelet to retry, when the claim cannot be read", async () => {
    reservedFor.set(CLAIM.uid, [holder.uid, second.uid]);
    readError = new Error("connect ECONNREFUSED 10.96.0.1:443");
    await assert.rejects(
      network.runPodSandbox(second, ctx),
      refusal(StatusCode.UNAVAILABLE, /cannot tell whether pod team-a\/second shares claim team-a\/shared-nic, which pod team-a\/holder holds.*ECONNREFUSED/),
    );
    readError = undefined;
    reservedFor.delete(CLAIM.uid); // the claim is gone: nothing to share
    await network.runPodSandbox(second, ctx);
    assert.equal(engine.begun.length, 0);
  });

  it("warns when a pod with devices does not require netclaim's NRI plugin, and only then", async () => {
    const unguarded = /does not require netclaim's NRI plugin/;
    const warned = (): string => warnings.map((w) => w.msg).join("\n");
    const requiring = (value: string): PodSandboxInfo => ({ ...holder, annotations: { ...holder.annotations, "required-plugins.noderesource.dev/pod": value } });
    await network.runPodSandbox(requiring('["sriov", "netclaim"]'), ctx);
    assert.equal(warned(), "");
    await network.stopPodSandbox(holder);
    await network.runPodSandbox(requiring("[sriov]"), ctx);
    assert.match(warned(), unguarded);
    await network.stopPodSandbox(holder);
    warnings.length = 0;
    await network.runPodSandbox(requiring("netclaim"), ctx);
    assert.match(warned(), /not a list of plugin names/);
    warnings.length = 0;
    await network.runPodSandbox(pod("plain", { namespace: "team-c" }), ctx);
    assert.equal(warned(), "", "a pod without devices needs nothing");
  });
});
