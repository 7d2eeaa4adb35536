/**
 * A shared parent (docs/devices.md#shared-parents) against the real API
 * server and kube-scheduler: the agent's own inventory and publisher over an
 * E810 fixture whose port ens2f0 the policy shares (interfaces: 8,
 * bandwidth: 10000M, written so to check that the server's "10G" is taken as
 * equal), pods pinned to a fake Node, no kubelet.
 *
 * From 1.36 (DRAConsumableCapacity on by default) the scheduler places up to
 * 8 claims on the parent, each with its own shareID and the capacity it
 * asked for, and holds back a pod that would take more bandwidth or
 * interfaces than are left until pods go away. Before (the gate is alpha,
 * off), the server drops allowMultipleAllocations, the request policies and
 * the claims' capacity requests: the publisher notices once and publishes the
 * parent as a whole device, which goes to one claim at a time. Which one a
 * run sees depends on its release (the api and api-newest suites).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { KubeClient, ResourceSlice } from "../../src/kube/index.ts";
import type { SlicePlan } from "../../src/slices/index.ts";
import { minorOf } from "../fixtures/k8s-versions.ts";
import { e810Node } from "../fixtures/nodes.ts";
import { agentClient, cluster, createFakeNode, deleteIfExists, fixtureRoot, nodeSlices, startAgent, waitFor, type Cluster, type RunningAgent } from "./harness.ts";

const nodeName = "api-shared";
// Pods bound to a node without a kubelet never finish a graceful deletion: a fresh namespace per run.
const namespace = `api-shared-${randomUUID().slice(0, 8)}`;
const parent = "pci-0000-5e-00-0"; // ens2f0
const wholeNic = "pci-0000-5e-00-1"; // ens2f1
const policy = { include: [{ ifName: "ens2f0", share: { interfaces: 8, bandwidth: "10000M" } }, { ifName: "ens2f1" }] };
const claimsPath = `/apis/resource.k8s.io/v1/namespaces/${namespace}`;

let c: Cluster;
let client: KubeClient;
let agent: RunningAgent;
let tree: { root: string; [Symbol.asyncDispose](): Promise<void> };
let writes: SlicePlan[] = [];
/** From 1.36 the scheduler shares devices (DRAConsumableCapacity, beta, on by default). */
let sharing: boolean;

interface AllocationResult {
  request: string;
  driver: string;
  pool: string;
  device: string;
  shareID?: string;
  consumedCapacity?: Record<string, string>;
}

interface Claim {
  metadata: { name: string };
  spec: { devices: { requests: { exactly?: { capacity?: unknown } }[] } };
  status?: { allocation?: { devices: { results: AllocationResult[] } } };
}

interface Pod {
  spec: { nodeName?: string };
  status?: {
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    resourceClaimStatuses?: { name: string; resourceClaimName?: string }[];
  };
}

const cel = (expression: string): { cel: { expression: string } } => ({ cel: { expression } });

async function start(): Promise<void> {
  writes = [];
  agent = await startAgent({ client, nodeName, root: tree.root, policy, onPublished: (plan) => writes.push(plan) });
}

before(async () => {
  c = await cluster();
  sharing = minorOf(c.version) >= 36;
  await createFakeNode(c, nodeName);
  await c.admin.request("POST", "/api/v1/namespaces", { body: { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } } });
  client = await agentClient(c, nodeName);
  tree = await fixtureRoot(e810Node());
  await start();
});

after(async () => {
  const pods = await c.admin.request<{ items: { metadata: { name: string } }[] }>("GET", `/api/v1/namespaces/${namespace}/pods`);
  for (const pod of pods.items) await deleteIfExists(c, `/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}?gracePeriodSeconds=0`);
  await deleteIfExists(c, `/api/v1/namespaces/${namespace}`);
  await agent.stop();
  client.close();
  await tree[Symbol.asyncDispose]();
});

/** A ResourceClaimTemplate with one request; returns its name. */
async function template(exactly: Record<string, unknown>): Promise<string> {
  const name = `tpl-${randomUUID().slice(0, 8)}`;
  await c.admin.request("POST", `${claimsPath}/resourceclaimtemplates`, {
    body: { apiVersion: "resource.k8s.io/v1", kind: "ResourceClaimTemplate", metadata: { name }, spec: { spec: { devices: { requests: [{ name: "nic", exactly }] } } } },
  });
  return name;
}

const askingBandwidth = (bandwidth: string, name = "bandwidth"): Promise<string> =>
  template({ deviceClassName: "netclaim-shared", capacity: { requests: { [name]: bandwidth } } });

/** A pod on the test node whose claim comes from `tpl`; returns its name. */
async function pod(tpl: string, prefix = "pod"): Promise<string> {
  const name = `${prefix}-${randomUUID().slice(0, 8)}`;
  await c.admin.request("POST", `/api/v1/namespaces/${namespace}/pods`, {
    body: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name },
      spec: {
        nodeSelector: { "kubernetes.io/hostname": nodeName },
        tolerations: [{ operator: "Exists" }],
        resourceClaims: [{ name: "nic", resourceClaimTemplateName: tpl }],
        containers: [{ name: "app", image: "netclaim.invalid/app:test", resources: { claims: [{ name: "nic" }] } }],
      },
    },
  });
  return name;
}

const getPod = (name: string): Promise<Pod> => c.admin.request<Pod>("GET", `/api/v1/namespaces/${namespace}/pods/${name}`);

async function scheduled(name: string, timeoutMs = 15_000): Promise<void> {
  assert.equal(await waitFor(`pod ${name} to be scheduled`, async () => (await getPod(name)).spec.nodeName, timeoutMs), nodeName);
}

/** The PodScheduled=False condition the scheduler gave the pod. */
async function unschedulable(name: string): Promise<{ reason?: string; message?: string }> {
  return waitFor(`pod ${name} to be marked unschedulable`, async () => {
    const object = await getPod(name);
    assert.equal(object.spec.nodeName, undefined, `pod ${name} was scheduled`);
    return object.status?.conditions?.find((cond) => cond.type === "PodScheduled" && cond.status === "False");
  });
}

async function assertHeldBack(name: string): Promise<void> {
  const condition = await unschedulable(name);
  assert.equal(condition.reason, "Unschedulable");
  assert.match(condition.message ?? "", /cannot allocate all claims/);
}

/** The claim generated for the pod's `nic` entry. */
async function claimOf(name: string): Promise<Claim> {
  const claim = await waitFor(`the claim of pod ${name}`, async () => (await getPod(name)).status?.resourceClaimStatuses?.[0]?.resourceClaimName);
  return c.admin.request<Claim>("GET", `${claimsPath}/resourceclaims/${claim}`);
}

/** The claim's one allocated device. */
async function allocatedOf(name: string): Promise<AllocationResult> {
  const claim = await waitFor(`the claim of pod ${name} to be allocated`, async () => {
    const object = await claimOf(name);
    return object.status?.allocation === undefined ? undefined : object;
  });
  const [result, ...more] = claim.status?.allocation?.devices.results ?? [];
  assert.deepEqual(more, []);
  assert.ok(result);
  assert.equal(result.driver, "netclaim.dev");
  assert.equal(result.pool, nodeName);
  return result;
}

/** Deletes pods and waits until their claims are gone, so what they held is free. */
async function deletePods(names: readonly string[]): Promise<void> {
  const claims = await Promise.all(names.map(async (name) => (await claimOf(name)).metadata.name));
  for (const name of names) await deleteIfExists(c, `/api/v1/namespaces/${namespace}/pods/${name}?gracePeriodSeconds=0`);
  await waitFor(`the claims of ${names.length} deleted pods to go`, async () => {
    const list = await c.admin.request<{ items: { metadata: { name: string } }[] }>("GET", `${claimsPath}/resourceclaims`);
    return list.items.some((claim) => claims.includes(claim.metadata.name)) ? undefined : true;
  }, 60_000);
}

async function parentDevice(): Promise<NonNullable<ResourceSlice["spec"]["devices"]>[number]> {
  const devices = (await nodeSlices(c, nodeName)).flatMap((s) => s.spec.devices ?? []);
  const device = devices.find((d) => d.name === parent);
  assert.ok(device, `${parent} is not published`);
  return device;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("a shared parent against the real API server and scheduler", () => {
  it("is published with the capacities this release keeps, and the publisher converges", async () => {
    const device = await parentDevice();
    assert.deepEqual(device.attributes?.["netclaim.dev/sharedParent"], { bool: true });
    if (sharing) {
      assert.equal(device.allowMultipleAllocations, true);
      // Written as 10000M; the server keeps its canonical form.
      assert.deepEqual(device.capacity, {
        bandwidth: { value: "10G", requestPolicy: { default: "1250M", validRange: { min: "1M", step: "1M" } } },
        interfaces: { value: "8", requestPolicy: { default: "1", validValues: ["1"] } },
      });
      assert.deepEqual(agent.errors, []);
    } else {
      assert.equal(device.allowMultipleAllocations, undefined, "the server drops it while DRAConsumableCapacity is off");
      assert.deepEqual(device.capacity, { bandwidth: { value: "10G" }, interfaces: { value: "8" } });
      assert.deepEqual(agent.errors.map((err) => (err as { code?: string }).code), ["SLICE_SHARING_DROPPED"]);
    }
    // A restarted agent finds its slice as the server wrote it back: from 1.36 nothing to write,
    // before one write (the server drops allowMultipleAllocations again), then nothing.
    await agent.stop();
    await start();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal(writes.length, sharing ? 0 : 1, JSON.stringify(writes.map((plan) => plan.writes.map((s) => s.spec.devices))));
    assert.ok(agent.publisher.publishedOnce);
  });

  it("is never given to a claim for a whole device: the exclusive classes leave it out", async () => {
    const onParent = await pod(await template({ deviceClassName: "netclaim-netdev", selectors: [cel('device.attributes["netclaim.dev"].ifName == "ens2f0"')] }), "whole");
    await assertHeldBack(onParent);
    const anyWhole = await pod(await template({ deviceClassName: "netclaim-pci-netdev" }), "whole");
    await scheduled(anyWhole);
    assert.equal((await allocatedOf(anyWhole)).device, wholeNic);
    await deletePods([onParent, anyWhole]);
  });

  it("takes 8 pods asking 1G each from 1.36, holds back one more interface or bandwidth than is left, and lets it in when pods go", async (t) => {
    const oneG = await askingBandwidth("1G");
    if (!sharing) {
      const stored = await c.admin.request<{ spec: Claim }>("GET", `${claimsPath}/resourceclaimtemplates/${oneG}`);
      assert.equal(stored.spec.spec.devices.requests[0]?.exactly?.capacity, undefined, "the server drops capacity requests while DRAConsumableCapacity is off");
      const [first, second] = [await pod(oneG), await pod(oneG)];
      await scheduled(first);
      const result = await allocatedOf(first);
      assert.equal(result.device, parent);
      assert.equal(result.shareID, undefined, "a whole device, not a share");
      await assertHeldBack(second);
      await deletePods([first]);
      await scheduled(second, 60_000);
      await deletePods([second]);
      return;
    }

    await t.test("a capacity name is matched as published: bandwidth, not netclaim.dev/bandwidth", async () => {
      const qualified = await pod(await askingBandwidth("1G", "netclaim.dev/bandwidth"), "qualified");
      await assertHeldBack(qualified);
      const twoInterfaces = await pod(await template({ deviceClassName: "netclaim-shared", capacity: { requests: { interfaces: "2" } } }), "two");
      await assertHeldBack(twoInterfaces);
      await deletePods([qualified, twoInterfaces]);
    });

    const pods = await Promise.all(Array.from({ length: 8 }, () => pod(oneG)));
    for (const name of pods) await scheduled(name);
    const results = await Promise.all(pods.map(allocatedOf));
    for (const result of results) {
      assert.equal(result.device, parent);
      assert.match(result.shareID ?? "", UUID);
      assert.deepEqual(result.consumedCapacity, { bandwidth: "1G", interfaces: "1" });
    }
    assert.equal(new Set(results.map((r) => r.shareID)).size, 8, "every allocation has its own shareID");

    // 8G of 10G taken, and all 8 interfaces: a ninth 1G pod is held back by interfaces alone.
    const ninthSmall = await pod(oneG, "ninth");
    await assertHeldBack(ninthSmall);
    await deletePods([ninthSmall]);

    const fiveG = await askingBandwidth("5G");
    const big = await pod(fiveG, "big");
    await assertHeldBack(big);
    const events = await waitFor("the scheduler's FailedScheduling event", async () => {
      const list = await c.admin.request<{ items: { reason?: string; message?: string }[] }>("GET", `/api/v1/namespaces/${namespace}/events`, {
        query: { fieldSelector: `involvedObject.name=${big}` },
      });
      const failed = list.items.filter((e) => e.reason === "FailedScheduling");
      return failed.length > 0 ? failed : undefined;
    });
    assert.match(events[0]?.message ?? "", /cannot allocate all claims/);

    // One pod gone: an interface is free but 3G of bandwidth is not 5G, so a fresh 5G pod is held back too.
    await deletePods(pods.slice(0, 1));
    const probe = await pod(fiveG, "probe");
    await assertHeldBack(probe);
    await deletePods([probe]);
    assert.equal((await getPod(big)).spec.nodeName, undefined);

    // Three more gone: 4G taken, so 5G fits.
    await deletePods(pods.slice(1, 4));
    await scheduled(big, 60_000);
    const result = await allocatedOf(big);
    assert.equal(result.device, parent);
    assert.deepEqual(result.consumedCapacity, { bandwidth: "5G", interfaces: "1" });
    const remaining = await Promise.all(pods.slice(4).map(allocatedOf));
    assert.equal(new Set([...remaining, result].map((r) => r.shareID)).size, 5);
    await deletePods([...pods.slice(4), big]);
  });

  it("charges a claim that asks for no bandwidth the parent's default share from 1.36, and gives it the whole parent before", async () => {
    const plain = await pod(await template({ deviceClassName: "netclaim-shared" }), "plain");
    // The first pod after the test before deleted its pods: a scheduler whose informer has not yet
    // seen their claims deallocated holds this one back, then retries it with backoff when it does.
    await scheduled(plain, 60_000);
    const result = await allocatedOf(plain);
    assert.equal(result.device, parent);
    if (sharing) {
      assert.match(result.shareID ?? "", UUID);
      assert.deepEqual(result.consumedCapacity, { bandwidth: "1250M", interfaces: "1" });
    } else {
      assert.equal(result.shareID, undefined);
      assert.equal(result.consumedCapacity, undefined);
    }
  });
});
