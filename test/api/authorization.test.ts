/**
 * What the agent's own credentials may do, as shipped (deploy/: RBAC and the
 * admission policies), against the oldest and the newest supported control
 * plane: a ServiceAccount token bound to an agent pod on one node.
 *
 * - ResourceSlices: its own driver's on its own node only.
 * - Claim status: its own entries in claims allocated devices of its node
 *   only; never the allocation or another driver's or node's entries. On the
 *   newest release the API server itself checks status.devices writes per
 *   driver and node (resourceclaims/driver, associated-node:patch); on the
 *   oldest that RBAC rule is inert and the admission policy does the work.
 *
 * Each run of the version matrix (the api and api-newest suites) checks its
 * own release: which of the two behaviours it expects follows from the
 * release (granular status authorization from 1.36).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { claimStatusApplyBody, deviceStatus } from "../../src/claims/status.ts";
import { applyResourceClaimStatus, KubeApiError, type KubeClient, type ResourceSlice } from "../../src/kube/index.ts";
import { k8sVersions, minorOf } from "../fixtures/k8s-versions.ts";
import { mixedNode } from "../fixtures/nodes.ts";

const release = k8sVersions().current;
/** From 1.36 the API server checks claim status writes per driver and node itself. */
const granular = minorOf(release) >= 36;
import { agentClient, cluster, createFakeNode, deleteIfExists, fixtureRoot, kubectlApply, startAgent, waitFor, type Cluster, type RunningAgent } from "./harness.ts";

const repo = new URL("../../", import.meta.url).pathname;
const slicesPath = "/apis/resource.k8s.io/v1/resourceslices";

interface Claim {
  metadata: { name: string; namespace: string; uid: string };
  status?: {
    allocation?: { devices: { results: { request: string; driver: string; pool: string; device: string }[] } };
    reservedFor?: unknown[];
    devices?: { driver: string; pool: string; device: string }[];
  };
}

/** Refused by RBAC or an admission policy. */
function forbidden(fragment: string): (err: unknown) => boolean {
  return refusal(403, fragment);
}

/**
 * Refused by the API server's per-driver, per-node check of status.devices
 * (1.36+), which reports a Forbidden field error in an Invalid (422) answer.
 */
const refusedByDriverCheck = refusal(422, 'changing status.devices requires resource="resourceclaims/driver"');

function refusal(status: number, fragment: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof KubeApiError, `expected an API error, got ${String(err)}`);
    assert.equal(err.status, status, err.message);
    assert.ok(err.message.includes(fragment), `"${err.message}" does not say "${fragment}"`);
    return true;
  };
}

describe(`the agent's credentials on the ${release} control plane`, () => {
  let c: Cluster;
  const suffix = String(minorOf(release));
  const nodeA = `api-authz-${suffix}-a`;
  const nodeB = `api-authz-${suffix}-b`;
  const namespace = `api-authz-${suffix}-${randomUUID().slice(0, 8)}`;
  let clientA: KubeClient;
  const otherDriver = "gpu.example.com";
  const otherClass = `api-authz-${suffix}-gpu`;
  const otherSlice = (node: string): string => `${node}-gpu`;
  const ownSlice = `${nodeA}-netclaim`;
  const forgedSlice = `${nodeA}-forged`;
  const agents: RunningAgent[] = [];
  const trees: { [Symbol.asyncDispose](): Promise<void> }[] = [];

  before(async () => {
    c = await cluster();
    await createFakeNode(c, nodeA);
    await createFakeNode(c, nodeB);
    await c.admin.request("POST", "/api/v1/namespaces", { body: { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } } });
    clientA = await agentClient(c, nodeA);
    // Another driver on both nodes, so a claim can hold its device beside ours.
    await deleteIfExists(c, `/apis/resource.k8s.io/v1/deviceclasses/${otherClass}`);
    await c.admin.request("POST", "/apis/resource.k8s.io/v1/deviceclasses", {
      body: { apiVersion: "resource.k8s.io/v1", kind: "DeviceClass", metadata: { name: otherClass }, spec: { selectors: [{ cel: { expression: `device.driver == "${otherDriver}"` } }] } },
    });
    for (const node of [nodeA, nodeB]) {
      await deleteIfExists(c, `${slicesPath}/${otherSlice(node)}`);
      await c.admin.request("POST", slicesPath, {
        body: {
          apiVersion: "resource.k8s.io/v1",
          kind: "ResourceSlice",
          metadata: { name: otherSlice(node) },
          spec: { driver: otherDriver, nodeName: node, pool: { name: node, generation: 0, resourceSliceCount: 1 }, devices: [0, 1, 2, 3].map((i) => ({ name: `gpu-${i}` })) },
        },
      });
    }
    // Both nodes publish, each with its own agent's token, so claims can be allocated on either.
    for (const [node, client] of [[nodeA, clientA], [nodeB, await agentClient(c, nodeB)]] as const) {
      const tree = await fixtureRoot(mixedNode());
      trees.push(tree);
      agents.push(await startAgent({ client, nodeName: node, root: tree.root }));
    }
  });

  after(async () => {
    const pods = await c.admin.request<{ items: { metadata: { name: string } }[] }>("GET", `/api/v1/namespaces/${namespace}/pods`);
    for (const pod of pods.items) {
      await c.admin.request("DELETE", `/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}`, { query: { gracePeriodSeconds: 0 } });
    }
    await deleteIfExists(c, `/api/v1/namespaces/${namespace}`);
    for (const agent of agents) {
      await agent.stop();
      agent.client.close();
    }
    for (const tree of trees) await tree[Symbol.asyncDispose]();
    // Slices without an owner outlive their node; the forged one exists only if a refusal failed.
    for (const name of [otherSlice(nodeA), otherSlice(nodeB), ownSlice, forgedSlice]) await deleteIfExists(c, `${slicesPath}/${name}`);
    await deleteIfExists(c, `/apis/resource.k8s.io/v1/deviceclasses/${otherClass}`);
    for (const node of [nodeA, nodeB]) await deleteIfExists(c, `/api/v1/nodes/${node}`);
  });

  /** A claim for a netclaim device and another driver's, and a pod using it, scheduled onto `node` by the real scheduler. */
  async function allocatedClaim(node: string): Promise<Claim> {
    const id = randomUUID().slice(0, 8);
    await c.admin.request("POST", `/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaims`, {
      body: {
        apiVersion: "resource.k8s.io/v1",
        kind: "ResourceClaim",
        metadata: { name: `claim-${id}` },
        spec: {
          devices: {
            requests: [
              { name: "nic", exactly: { deviceClassName: "netclaim-netdev" } },
              { name: "gpu", exactly: { deviceClassName: otherClass } },
            ],
          },
        },
      },
    });
    await c.admin.request("POST", `/api/v1/namespaces/${namespace}/pods`, {
      body: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: `pod-${id}` },
        spec: {
          nodeSelector: { "kubernetes.io/hostname": node },
          tolerations: [{ operator: "Exists" }],
          resourceClaims: [{ name: "nic", resourceClaimName: `claim-${id}` }],
          containers: [{ name: "app", image: "netclaim.invalid/app:test", resources: { claims: [{ name: "nic" }] } }],
        },
      },
    });
    return waitFor(`claim-${id} to be allocated on ${node}`, async () => {
      const claim = await c.admin.request<Claim>("GET", `/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaims/claim-${id}`);
      return claim.status?.allocation === undefined ? undefined : claim;
    }, 30_000);
  }

  /** A status entry for the claim's device of `driver`, as the agent's status reporter writes ours. */
  function statusBody(claim: Claim, driver = "netclaim.dev"): ReturnType<typeof claimStatusApplyBody> {
    const result = claim.status?.allocation?.devices.results.find((r) => r.driver === driver);
    assert.ok(result !== undefined, `claim ${claim.metadata.name} holds a device of ${driver}`);
    const { pool, device } = result;
    return claimStatusApplyBody(claim.metadata, [deviceStatus({ driver, pool, device }, { kind: "prepared" }, { now: new Date() })]);
  }

  it("writes its own driver's slices on its own node, and no other driver's", async () => {
    const denied = forbidden(`may only write ResourceSlices of driver netclaim.dev`);
    const slice = (name: string, driver: string): ResourceSlice => ({
      apiVersion: "resource.k8s.io/v1",
      kind: "ResourceSlice",
      metadata: { name },
      spec: { driver, nodeName: nodeA, pool: { name: nodeA, generation: 0, resourceSliceCount: 1 }, devices: [] },
    });
    await assert.rejects(clientA.request("POST", slicesPath, { body: slice(forgedSlice, otherDriver) }), denied);
    // The other driver's slice on the agent's node: the agent may neither change nor delete it.
    const theirs = await c.admin.request<ResourceSlice>("GET", `${slicesPath}/${otherSlice(nodeA)}`);
    await assert.rejects(clientA.request("PUT", `${slicesPath}/${otherSlice(nodeA)}`, { body: { ...theirs, spec: { ...theirs.spec, devices: [] } } }), denied);
    await assert.rejects(clientA.request("DELETE", `${slicesPath}/${otherSlice(nodeA)}`), denied);
    // Its own driver's slice on its node: create, update and delete all work.
    await deleteIfExists(c, `${slicesPath}/${ownSlice}`);
    const created = await clientA.request<ResourceSlice>("POST", slicesPath, { body: slice(ownSlice, "netclaim.dev") });
    await clientA.request("PUT", `${slicesPath}/${ownSlice}`, { body: { ...created, spec: { ...created.spec, pool: { ...created.spec.pool, generation: 1 } } } });
    await clientA.request("DELETE", `${slicesPath}/${ownSlice}`);
  });

  it("writes its own entries in the status of its node's claims, and nothing else", async () => {
    const ours = await allocatedClaim(nodeA);
    await applyResourceClaimStatus(clientA, statusBody(ours), "netclaim.dev");
    const written = await c.admin.request<Claim>("GET", `/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaims/${ours.metadata.name}`);
    const nic = ours.status?.allocation?.devices.results.find((r) => r.driver === "netclaim.dev");
    assert.deepEqual(written.status?.devices?.map((d) => `${d.driver}/${d.pool}/${d.device}`), [`netclaim.dev/${nodeA}/${nic?.device}`]);

    const theirs = await allocatedClaim(nodeB);
    // The newest API server refuses these itself, before the admission policy sees them.
    const deniedBy = (policyMessage: string): ((err: unknown) => boolean) => (granular ? refusedByDriverCheck : forbidden(policyMessage));
    await assert.rejects(applyResourceClaimStatus(clientA, statusBody(theirs), "netclaim.dev"), deniedBy("claims allocated devices of its node"));
    // The other driver's entry in a claim of its node. (An entry for a device the claim was not
    // allocated, of any node, is the API's own validation error, before admission.)
    await assert.rejects(applyResourceClaimStatus(clientA, statusBody(ours, otherDriver), otherDriver), deniedBy("its own devices"));
    // The scheduler's part of the status.
    await assert.rejects(
      clientA.request("PATCH", `/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaims/${ours.metadata.name}/status`, {
        body: { status: { reservedFor: [] } },
        contentType: "application/merge-patch+json",
      }),
      granular ? refusal(422, 'requires resource="resourceclaims/binding"') : forbidden("allocation or consumers"),
    );
    // Removing its entries works (unprepare).
    await applyResourceClaimStatus(clientA, claimStatusApplyBody(ours.metadata, []), "netclaim.dev");
  });

  it(granular ? "needs the resourceclaims/driver rule for claim status" : "does not need the resourceclaims/driver rule for claim status", async () => {
    const shipped = await readFile(`${repo}deploy/base/rbac.yaml`, "utf8");
    const withoutDriverRule = parseAllDocuments(shipped)
      .map((doc) => {
        const object = doc.toJS() as { kind: string; rules?: { resources: string[] }[] };
        if (object.kind === "ClusterRole" && object.rules !== undefined) object.rules = object.rules.filter((r) => !r.resources.includes("resourceclaims/driver"));
        return JSON.stringify(object);
      })
      .join("\n---\n");
    const claim = await allocatedClaim(nodeA);
    await kubectlApply(c, withoutDriverRule);
    try {
      // RBAC changes reach the authorizer through an informer: wait until the rule is gone.
      await waitFor("the ClusterRole without resourceclaims/driver", async () => {
        const role = await c.admin.request<{ rules: { resources: string[] }[] }>("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/netclaim-agent");
        return role.rules.some((r) => r.resources.includes("resourceclaims/driver")) ? undefined : true;
      });
      if (granular) {
        await waitFor("the API server to refuse the write", () =>
          applyResourceClaimStatus(clientA, statusBody(claim), "netclaim.dev").then(
            () => undefined,
            (err: unknown) => (refusedByDriverCheck(err) ? true : undefined),
          ),
        );
      } else {
        await applyResourceClaimStatus(clientA, statusBody(claim), "netclaim.dev");
      }
    } finally {
      await kubectlApply(c, shipped);
    }
  });
});
