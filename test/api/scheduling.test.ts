/**
 * The real kube-scheduler allocating ResourceClaims against slices the agent
 * published: every DeviceClass in deploy/, matchAttribute on
 * resource.kubernetes.io/pcieRoot, and an impossible claim. No kubelet runs:
 * pods are pinned to a Node object the test creates, and scheduling is
 * observed on the pod (nodeName, PodScheduled) and the claim (allocation).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { DeviceAttribute, KubeClient, ResourceSlice } from "../../src/kube/index.ts";
import { mixedNode } from "../fixtures/nodes.ts";
import { agentClient, cluster, createFakeNode, deleteIfExists, fixtureRoot, nodeSlices, startAgent, waitFor, type Cluster, type RunningAgent } from "./harness.ts";

const nodeName = "api-sched";
// A fresh namespace per run: pods bound to a node without a kubelet never
// finish a graceful deletion, so each run force-deletes its own at the end.
const namespace = `api-sched-${randomUUID().slice(0, 8)}`;
let c: Cluster;
let client: KubeClient;
let agent: RunningAgent;
let tree: { root: string; [Symbol.asyncDispose](): Promise<void> };
let attributesByDevice: Map<string, Record<string, DeviceAttribute>>;

interface Request {
  name: string;
  exactly: { deviceClassName: string; count?: number; selectors?: { cel: { expression: string } }[] };
}

interface Claim {
  metadata: { name: string };
  status?: { allocation?: { devices: { results: { request: string; driver: string; pool: string; device: string }[] } } };
}

interface Pod {
  spec: { nodeName?: string };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

before(async () => {
  c = await cluster();
  await createFakeNode(c, nodeName);
  await c.admin.request("POST", "/api/v1/namespaces", { body: { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } } });
  client = await agentClient(c, nodeName);
  tree = await fixtureRoot(mixedNode());
  agent = await startAgent({ client, nodeName, root: tree.root });
  const slices: ResourceSlice[] = await nodeSlices(c, nodeName);
  attributesByDevice = new Map(slices.flatMap((s) => (s.spec.devices ?? []).map((d) => [d.name, d.attributes ?? {}])));
});

after(async () => {
  const pods = await c.admin.request<{ items: { metadata: { name: string } }[] }>("GET", `/api/v1/namespaces/${namespace}/pods`);
  for (const pod of pods.items) {
    await c.admin.request("DELETE", `/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}`, { query: { gracePeriodSeconds: 0 } });
  }
  await deleteIfExists(c, `/api/v1/namespaces/${namespace}`);
  await agent.stop();
  client.close();
  await tree[Symbol.asyncDispose]();
});

/** Creates a claim and a pod using it on the test node; returns their names. */
async function claimAndPod(requests: Request[], constraints: unknown[] = []): Promise<{ claim: string; pod: string }> {
  const id = randomUUID().slice(0, 8);
  const claim = `claim-${id}`;
  const pod = `pod-${id}`;
  await c.admin.request("POST", `/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaims`, {
    body: { apiVersion: "resource.k8s.io/v1", kind: "ResourceClaim", metadata: { name: claim }, spec: { devices: { requests, constraints } } },
  });
  await c.admin.request("POST", `/api/v1/namespaces/${namespace}/pods`, {
    body: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: pod },
      spec: {
        nodeSelector: { "kubernetes.io/hostname": nodeName },
        tolerations: [{ operator: "Exists" }],
        resourceClaims: [{ name: "nics", resourceClaimName: claim }],
        containers: [{ name: "app", image: "netclaim.invalid/app:test", resources: { claims: [{ name: "nics" }] } }],
      },
    },
  });
  return { claim, pod };
}

/** request name -> allocated device names */
async function allocated(claim: string): Promise<Map<string, string[]>> {
  const allocation = await waitFor(`claim ${claim} to be allocated`, async () => {
    const object = await c.admin.request<Claim>("GET", `/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaims/${claim}`);
    return object.status?.allocation;
  });
  const devices = new Map<string, string[]>();
  for (const result of allocation.devices.results) {
    assert.equal(result.driver, "netclaim.dev");
    assert.equal(result.pool, nodeName);
    devices.set(result.request, [...(devices.get(result.request) ?? []), result.device]);
  }
  return devices;
}

async function scheduledNode(pod: string): Promise<string> {
  return waitFor(`pod ${pod} to be scheduled`, async () => {
    const object = await c.admin.request<Pod>("GET", `/api/v1/namespaces/${namespace}/pods/${pod}`);
    return object.spec.nodeName;
  });
}

async function unschedulable(pod: string): Promise<{ reason?: string; message?: string }> {
  return waitFor(`pod ${pod} to be marked unschedulable`, async () => {
    const object = await c.admin.request<Pod>("GET", `/api/v1/namespaces/${namespace}/pods/${pod}`);
    assert.equal(object.spec.nodeName, undefined);
    return object.status?.conditions?.find((cond) => cond.type === "PodScheduled" && cond.status === "False");
  });
}

function attribute(device: string | undefined, name: string): DeviceAttribute | undefined {
  return attributesByDevice.get(device ?? "")?.[name];
}

const cel = (expression: string): { cel: { expression: string } } => ({ cel: { expression } });

describe("scheduling against published slices", () => {
  it("allocates through netclaim-netdev with a CEL selector on ifName", async () => {
    const { claim, pod } = await claimAndPod([
      { name: "nic", exactly: { deviceClassName: "netclaim-netdev", selectors: [cel('device.attributes["netclaim.dev"].ifName == "ens1f1np1"')] } },
    ]);
    assert.equal(await scheduledNode(pod), nodeName);
    assert.deepEqual((await allocated(claim)).get("nic"), ["pci-0000-3b-00-1"]);
  });

  it("allocates an RDMA device through netclaim-rdma", async () => {
    const { claim, pod } = await claimAndPod([{ name: "rdma", exactly: { deviceClassName: "netclaim-rdma" } }]);
    assert.equal(await scheduledNode(pod), nodeName);
    const [device, ...more] = (await allocated(claim)).get("rdma") ?? [];
    assert.deepEqual(more, []);
    assert.deepEqual(attribute(device, "netclaim.dev/rdma"), { bool: true });
  });

  it("allocates two VFs through netclaim-sriov-vf", async () => {
    const { claim, pod } = await claimAndPod([{ name: "vf", exactly: { deviceClassName: "netclaim-sriov-vf", count: 2 } }]);
    assert.equal(await scheduledNode(pod), nodeName);
    const devices = (await allocated(claim)).get("vf") ?? [];
    assert.equal(new Set(devices).size, 2);
    for (const device of devices) assert.deepEqual(attribute(device, "netclaim.dev/isSriovVf"), { bool: true });
  });

  it("refuses a pcieRoot match that no pair of devices satisfies", async () => {
    // The E810 port sits under pci0000:5d, where no device has RDMA.
    const { pod } = await claimAndPod(
      [
        { name: "e810", exactly: { deviceClassName: "netclaim-pci-netdev", selectors: [cel('device.attributes["netclaim.dev"].ifName == "ens2f0"')] } },
        { name: "rdma", exactly: { deviceClassName: "netclaim-rdma" } },
      ],
      [{ requests: ["e810", "rdma"], matchAttribute: "resource.kubernetes.io/pcieRoot" }],
    );
    const condition = await unschedulable(pod);
    assert.equal(condition.reason, "Unschedulable");
    assert.match(condition.message ?? "", /cannot allocate all claims/);
  });

  it("allocates a second NIC under the same PCIe root with matchAttribute", async () => {
    const { claim, pod } = await claimAndPod(
      [
        { name: "first", exactly: { deviceClassName: "netclaim-pci-netdev", selectors: [cel('device.attributes["netclaim.dev"].ifName == "ens2f0"')] } },
        { name: "second", exactly: { deviceClassName: "netclaim-pci-netdev" } },
      ],
      [{ requests: ["first", "second"], matchAttribute: "resource.kubernetes.io/pcieRoot" }],
    );
    assert.equal(await scheduledNode(pod), nodeName);
    const devices = await allocated(claim);
    assert.deepEqual(devices.get("first"), ["pci-0000-5e-00-0"]);
    // Devices under pci0000:3a sort first; only the constraint makes the allocator pick the other E810 port.
    assert.deepEqual(devices.get("second"), ["pci-0000-5e-00-1"]);
    assert.deepEqual(attribute(devices.get("second")?.[0], "resource.kubernetes.io/pcieRoot"), { string: "pci0000:5d" });
  });

  it("leaves a pod asking for more devices than exist Pending with the scheduler's DRA reason", async () => {
    const { pod } = await claimAndPod([{ name: "many", exactly: { deviceClassName: "netclaim-sriov-vf", count: 10 } }]);
    const condition = await unschedulable(pod);
    assert.equal(condition.reason, "Unschedulable");
    assert.match(condition.message ?? "", /cannot allocate all claims/);
  });
});
