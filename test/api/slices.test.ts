/**
 * ResourceSlice publication against a real kube-apiserver, with the agent's
 * own credentials (a pod-bound ServiceAccount token under deploy/'s RBAC and
 * admission policy), never as cluster admin.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { linkEventSource } from "../../src/netlink/index.ts";
import { KubeApiError, type KubeClient, type ResourceSlice } from "../../src/kube/index.ts";
import { connectxNode, e810Node, largeSriovNode, virtioNode } from "../fixtures/nodes.ts";
import type { SysfsFixture } from "../fixtures/sysfs-tree.ts";
import { agentClient, cluster, createFakeNode, deleteIfExists, fixtureRoot, nodeSlices, startAgent, tokenClient, waitFor, type Cluster } from "./harness.ts";

let c: Cluster;
const clients: KubeClient[] = [];

before(async () => {
  c = await cluster();
});

after(() => {
  for (const client of clients) client.close();
});

async function agentFor(nodeName: string): Promise<KubeClient> {
  await createFakeNode(c, nodeName);
  const client = await agentClient(c, nodeName);
  clients.push(client);
  return client;
}

function deviceNames(slices: readonly ResourceSlice[]): string[] {
  return slices.flatMap((s) => (s.spec.devices ?? []).map((d) => d.name)).sort();
}

describe("slice publication", () => {
  const fixtures: [string, () => SysfsFixture][] = [
    ["api-connectx", connectxNode],
    ["api-e810", e810Node],
    ["api-virtio", virtioNode],
  ];
  for (const [nodeName, fixture] of fixtures) {
    it(`publishes the ${nodeName.slice(4)} fixture as one valid slice owned by the Node`, async () => {
      const client = await agentFor(nodeName);
      await using tree = await fixtureRoot(fixture());
      const agent = await startAgent({ client, nodeName, root: tree.root });
      try {
        const expected = agent.inventory.current().reports.filter((r) => r.publish).map((r) => r.name).sort();
        assert.ok(expected.length > 0);
        const slices = await nodeSlices(c, nodeName);
        assert.equal(slices.length, 1);
        const slice = slices[0]!;
        assert.deepEqual(deviceNames(slices), expected);
        assert.equal(slice.spec.driver, "netclaim.dev");
        assert.equal(slice.spec.pool.name, nodeName);
        assert.equal(slice.spec.pool.resourceSliceCount, 1);
        const node = await c.admin.request<{ metadata: { uid: string } }>("GET", `/api/v1/nodes/${nodeName}`);
        assert.deepEqual(slice.metadata.ownerReferences, [{ apiVersion: "v1", kind: "Node", name: nodeName, uid: node.metadata.uid, controller: true }]);
        assert.deepEqual(agent.errors, []);
      } finally {
        await agent.stop();
      }
    });
  }

  it("publishes standard, Multus and netclaim attributes for a ConnectX VF", async () => {
    const slices = await nodeSlices(c, "api-connectx");
    const vf = slices.flatMap((s) => s.spec.devices ?? []).find((d) => d.name === "pci-0000-3b-00-3")!;
    assert.deepEqual(vf.attributes!["resource.kubernetes.io/pcieRoot"], { string: "pci0000:3a" });
    assert.deepEqual(vf.attributes!["resource.kubernetes.io/pciBusID"], { string: "0000:3b:00.3" });
    assert.deepEqual(vf.attributes!["resource.kubernetes.io/numaNode"], { int: 0 });
    assert.deepEqual(vf.attributes!["k8s.cni.cncf.io/deviceID"], { string: "0000:3b:00.3" });
    assert.deepEqual(vf.attributes!["k8s.cni.cncf.io/resourceName"], { string: "netclaim.dev/netdev" });
    assert.deepEqual(vf.attributes!["netclaim.dev/isSriovVf"], { bool: true });
    assert.deepEqual(vf.attributes!["netclaim.dev/sriovPfAddress"], { string: "0000:3b:00.0" });
    assert.deepEqual(vf.attributes!["netclaim.dev/rdmaDevice"], { string: "mlx5_3" });
  });

  it("splits 300 devices into 3 slices of one pool generation", async () => {
    const nodeName = "api-large";
    const client = await agentFor(nodeName);
    await using tree = await fixtureRoot(largeSriovNode(300));
    const agent = await startAgent({ client, nodeName, root: tree.root });
    try {
      const slices = await nodeSlices(c, nodeName);
      assert.equal(slices.length, 3);
      assert.deepEqual(slices.map((s) => s.spec.devices?.length), [128, 128, 44]);
      const generations = new Set(slices.map((s) => s.spec.pool.generation));
      assert.equal(generations.size, 1);
      assert.ok(slices.every((s) => s.spec.pool.resourceSliceCount === 3));
      assert.equal(new Set(deviceNames(slices)).size, 300);
    } finally {
      await agent.stop();
    }
  });
});

describe("slice reconciliation", () => {
  const nodeName = "api-repair";

  it("recreates a deleted slice and reverts an edited one", async () => {
    const client = await agentFor(nodeName);
    await using tree = await fixtureRoot(connectxNode());
    const agent = await startAgent({ client, nodeName, root: tree.root });
    try {
      const [original] = await nodeSlices(c, nodeName);
      assert.ok(original?.metadata.name !== undefined);
      const path = `/apis/resource.k8s.io/v1/resourceslices/${original.metadata.name}`;

      await c.admin.request("DELETE", path);
      const recreated = await waitFor("the deleted slice to come back", async () => {
        const [slice] = await nodeSlices(c, nodeName);
        return slice !== undefined && slice.metadata.uid !== original.metadata.uid ? slice : undefined;
      });
      assert.deepEqual(recreated.spec, original.spec);

      const edited = structuredClone(recreated);
      const device = edited.spec.devices?.[0];
      assert.ok(device?.attributes !== undefined);
      device.attributes["netclaim.dev/mtu"] = { int: 1 };
      await c.admin.request("PUT", path, { body: edited });
      const reverted = await waitFor("the edited slice to be reverted", async () => {
        const [slice] = await nodeSlices(c, nodeName);
        return slice !== undefined && isDeepStrictEqual(slice.spec.devices, original.spec.devices) ? slice : undefined;
      });
      assert.deepEqual(reverted.spec.devices, original.spec.devices);
      assert.deepEqual(agent.errors, []);
    } finally {
      await agent.stop();
    }
  });

  it("makes no writes when restarted with an unchanged inventory", async () => {
    await using tree = await fixtureRoot(connectxNode());
    const first = await startAgent({ client: await agentFor("api-restart"), nodeName: "api-restart", root: tree.root });
    await first.stop();
    const before = await nodeSlices(c, "api-restart");

    const client = await agentClient(c, "api-restart");
    clients.push(client);
    const second = await startAgent({ client, nodeName: "api-restart", root: tree.root });
    try {
      // Let any stray event-triggered reconcile run before counting.
      const reconciles = second.publisher.reconciles;
      second.inventory.requestRescan();
      await waitFor("a rescan", () => Promise.resolve(second.inventory.scans > 1 ? true : undefined));
      assert.ok(second.publisher.reconciles >= reconciles);
      assert.equal(client.counter.writes(), 0);
      assert.deepEqual(await nodeSlices(c, "api-restart"), before);
    } finally {
      await second.stop();
    }
  });

  it("publishes a new veth on the host and withdraws it when it goes", async () => {
    const nodeName = "api-hotplug";
    const client = await agentFor(nodeName);
    const removeVeth = (): void => {
      spawnSync("ip", ["link", "del", "apihp0a"], { stdio: "ignore" });
    };
    removeVeth();
    const agent = await startAgent({
      client,
      nodeName,
      root: "/",
      policy: { include: [{ ifName: "apihp0*", kinds: ["veth"] }] },
      linkEvents: linkEventSource(),
    });
    try {
      assert.deepEqual(deviceNames(await nodeSlices(c, nodeName)), []);
      execFileSync("ip", ["link", "add", "apihp0a", "type", "veth", "peer", "name", "apihp0b"]);
      const published = await waitFor("the veth pair in the slice", async () => {
        const names = deviceNames(await nodeSlices(c, nodeName));
        return names.length === 2 ? names : undefined;
      });
      assert.deepEqual(published, ["apihp0a", "apihp0b"]);
      removeVeth();
      await waitFor("the veth pair to leave the slice", async () =>
        deviceNames(await nodeSlices(c, nodeName)).length === 0 ? true : undefined,
      );
      assert.deepEqual(agent.errors, []);
    } finally {
      removeVeth();
      await agent.stop();
    }
  });
});

describe("admission policy", () => {
  it("denies the agent writing another node's slice", async () => {
    const client = await agentFor("api-policy-a");
    await createFakeNode(c, "api-policy-b");
    const foreign: ResourceSlice = {
      apiVersion: "resource.k8s.io/v1",
      kind: "ResourceSlice",
      metadata: { name: "api-policy-foreign" },
      spec: { driver: "netclaim.dev", nodeName: "api-policy-b", pool: { name: "api-policy-b", generation: 0, resourceSliceCount: 1 }, devices: [] },
    };
    await deleteIfExists(c, "/apis/resource.k8s.io/v1/resourceslices/api-policy-foreign");
    await assert.rejects(
      client.request("POST", "/apis/resource.k8s.io/v1/resourceslices", { body: foreign }),
      (err: unknown) =>
        err instanceof KubeApiError && err.status === 403 && err.message.includes("may only write ResourceSlices of its own node"),
    );
    // The same slice written by an admin may not be changed or deleted by the agent either.
    await c.admin.request("POST", "/apis/resource.k8s.io/v1/resourceslices", { body: foreign });
    await assert.rejects(
      client.request("DELETE", "/apis/resource.k8s.io/v1/resourceslices/api-policy-foreign"),
      (err: unknown) => err instanceof KubeApiError && err.status === 403 && err.message.includes("its own node"),
    );
    await c.admin.request("DELETE", "/apis/resource.k8s.io/v1/resourceslices/api-policy-foreign");
  });

  it("denies a token that is not bound to a pod on a node", async () => {
    const review = await c.admin.request<{ status: { token: string } }>(
      "POST",
      "/api/v1/namespaces/netclaim/serviceaccounts/netclaim-agent/token",
      { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 600 } } },
    );
    const client = tokenClient(c, review.status.token);
    clients.push(client);
    await assert.rejects(
      client.request("POST", "/apis/resource.k8s.io/v1/resourceslices", {
        body: {
          apiVersion: "resource.k8s.io/v1",
          kind: "ResourceSlice",
          metadata: { name: "api-policy-unbound" },
          spec: { driver: "netclaim.dev", nodeName: "api-policy-a", pool: { name: "api-policy-a", generation: 0, resourceSliceCount: 1 }, devices: [] },
        },
      }),
      (err: unknown) => err instanceof KubeApiError && err.status === 403 && err.message.includes("bound to its pod"),
    );
  });
});
