/**
 * Many pods on one shared parent, on the real node: a veth stands in for the
 * NIC the device policy publishes as a shared parent (`share`), and each pod's
 * claim gets a macvlan child of it made in the pod. Covered: the children
 * reach each other (bridge mode) but not the parent's host address; the claim
 * status carries the allocation's shareID and networkData; deleting the pods
 * deletes their children and leaves the parent exactly as it was; kill -9
 * during a churn of pods leaves no orphan child and the parent unchanged.
 *
 * Where the release has no consumable capacity (DRAConsumableCapacity is off
 * before 1.36), the API server drops allowMultipleAllocations: the parent is
 * then allocated to one claim at a time, which the test checks instead of the
 * many-pod cases.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { k8sVersions, minorOf } from "../fixtures/k8s-versions.ts";
import { createNicPair, DRIVER, E2eAgent, deviceClassFor, waitForPublished } from "./agent.ts";
import {
  addressOnly,
  apply,
  busyboxPod,
  Cleanup,
  configureHostSide,
  deleteObjects,
  deletePods,
  eventually,
  getPod,
  kubectl,
  macvlanNetwork,
  deleteNetwork,
  hostDevices,
  kubectlJson,
  node,
  podCanPing,
  podInterface,
  runCommand,
  uniqueName,
  waitForPodsReady,
  type Manifest,
} from "./harness.ts";

const PARENT = "nce2sp";
const PARENT_PEER = "ncp2sp";
const CHURN_PODS = 32;
const consumableCapacity = minorOf(k8sVersions().current) >= 36;

const claimSchema = z.object({
  status: z.object({
    allocation: z.object({ devices: z.object({ results: z.array(z.object({ device: z.string(), shareID: z.string().optional() })) }) }).optional(),
    devices: z.array(z.object({
      device: z.string(),
      shareID: z.string().optional(),
      networkData: z.object({ interfaceName: z.string(), ips: z.array(z.string()).optional(), hardwareAddress: z.string().optional() }).optional(),
    })).optional(),
  }),
});

/** A claim for one child of the parent, asking 1G of its bandwidth, with `interface` as its NetworkConfig's. */
function childClaim(name: string, deviceClass: string, iface: Record<string, unknown>): Manifest {
  return {
    apiVersion: "resource.k8s.io/v1",
    kind: "ResourceClaim",
    metadata: { name, namespace: "default" },
    spec: {
      devices: {
        requests: [{ name: "nic", exactly: { deviceClassName: deviceClass, capacity: { requests: { bandwidth: "1G" } } } }],
        config: [{ opaque: { driver: DRIVER, parameters: { apiVersion: "netclaim.dev/v1alpha1", kind: "NetworkConfig", interface: iface } } }],
      },
    },
  };
}

function podWith(name: string, claim: string): Manifest {
  return busyboxPod({ name, spec: { resourceClaims: [{ name: "nic", resourceClaimName: claim }] }, container: { resources: { claims: [{ name: "nic" }] } } });
}

/** The parent as a user sees it on the host, and whether anything still hangs off it (its promiscuity counts macvlan children). */
async function parentState(): Promise<{ device: unknown; promiscuity: number }> {
  const [device] = await hostDevices([PARENT]);
  const { stdout } = await runCommand("ip", ["-json", "-details", "link", "show", "dev", PARENT]);
  const [link] = JSON.parse(stdout) as { promiscuity: number }[];
  return { device, promiscuity: link?.promiscuity ?? -1 };
}

describe("pods sharing one parent NIC through child interfaces", { timeout: 900_000 }, () => {
  const cleanup = new Cleanup();
  const deviceClass = uniqueName("e2e-sp");
  let agent: E2eAgent;
  let parentBefore: Awaited<ReturnType<typeof parentState>>;

  before(async () => {
    await node();
    const pair = await createNicPair(PARENT, PARENT_PEER);
    cleanup.defer(() => pair.remove());
    // The parent's host address shares the pods' subnet: only macvlan's isolation keeps them apart.
    await configureHostSide(PARENT, 1);
    await runCommand("ip", ["link", "set", PARENT_PEER, "up"]);
    parentBefore = await parentState();
    agent = await E2eAgent.start({ nicGlob: "nce2sp-none*", sharedParents: { ifName: PARENT, share: { interfaces: CHURN_PODS, bandwidth: `${String(CHURN_PODS)}G` } } });
    cleanup.defer(() => agent.remove());
    await apply(deviceClassFor(deviceClass, PARENT));
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    await waitForPublished(PARENT, 1);
  });
  after(() => cleanup.run());

  it("gives each pod a configured child; the claim reports it with the allocation's share; deleting the pods deletes the children", async () => {
    const pods = consumableCapacity ? [uniqueName("e2e-sp-a"), uniqueName("e2e-sp-b")] : [uniqueName("e2e-sp-a")];
    const claims = pods.map((pod) => `${pod}-nic`);
    cleanup.defer(() => deleteObjects("resourceclaims.resource.k8s.io", claims));
    cleanup.defer(() => deletePods(pods));
    const addresses = pods.map((_, i) => `198.18.250.${String(5 + i)}/28`);
    await apply(...pods.flatMap((pod, i) => [childClaim(claims[i] ?? "", deviceClass, { name: "shared0", mtu: 1400, addresses: [addresses[i]] }), podWith(pod, claims[i] ?? "")]));
    await waitForPodsReady(pods, "default", 180);
    for (const [i, pod] of pods.entries()) {
      const child = await podInterface(pod, "shared0");
      assert.equal(child?.kind, "macvlan", `${pod} has a macvlan child`);
      assert.equal(child.mtu, 1400);
      assert.deepEqual(child.addresses, [addresses[i]]);
      const { status } = await kubectlJson(["get", "resourceclaim", "-n", "default", claims[i] ?? ""], claimSchema);
      const allocated = status.allocation?.devices.results[0];
      const reported = status.devices?.find((d) => d.device === allocated?.device);
      assert.equal(reported?.shareID, allocated?.shareID, "the status entry carries the allocation's shareID");
      assert.equal(reported?.networkData?.interfaceName, "shared0");
      assert.equal(reported.networkData.hardwareAddress, child.mac, "the child's (stable) MAC");
    }
    const [first = "", second] = pods;
    if (second !== undefined) {
      assert.equal(await podCanPing(first, addressOnly(addresses[1] ?? "")), true, "children of one parent reach each other (bridge mode)");
    }
    assert.equal(await podCanPing(first, "198.18.250.1", { count: 1 }), false, "a child does not reach its parent's host address");
    assert.equal((await parentState()).promiscuity > parentBefore.promiscuity, true, "the children hang off the parent");
    await deletePods(pods);
    await eventually("the children gone and the parent as it was", async () => JSON.stringify(await parentState()) === JSON.stringify(parentBefore), 60_000);
    assert.deepEqual(await agent.journal(), []);
  });

  it("hands the parent to Multus in mode multus: a macvlan NetworkAttachmentDefinition on it gives each pod its child", async () => {
    const pods = consumableCapacity ? [uniqueName("e2e-spm-a"), uniqueName("e2e-spm-b")] : [uniqueName("e2e-spm-a")];
    const claims = pods.map((pod) => `${pod}-nic`);
    const nad = uniqueName("e2e-spm");
    const network = macvlanNetwork(nad, PARENT, { subnet: "198.18.250.0/28", rangeStart: "198.18.250.8", rangeEnd: "198.18.250.12" }) as { metadata: Record<string, unknown> };
    // Multus's DRA path takes the device of the claim whose resourceName the network names.
    network.metadata.annotations = { "k8s.v1.cni.cncf.io/resourceName": "netclaim.dev/netdev" };
    await apply(network);
    cleanup.defer(() => deleteNetwork(nad));
    cleanup.defer(() => deleteObjects("resourceclaims.resource.k8s.io", claims));
    cleanup.defer(() => deletePods(pods));
    const multusClaim = (name: string): Manifest => {
      const manifest = childClaim(name, deviceClass, {}) as { spec: { devices: { config: { opaque: { parameters: Record<string, unknown> } }[] } } };
      const parameters = manifest.spec.devices.config[0]?.opaque.parameters ?? {};
      delete parameters.interface;
      parameters.mode = "multus";
      return manifest;
    };
    await apply(...pods.flatMap((pod, i) => [
      multusClaim(claims[i] ?? ""),
      busyboxPod({ name: pod, networks: [nad], spec: { resourceClaims: [{ name: "nic", resourceClaimName: claims[i] ?? "" }] }, container: { resources: { claims: [{ name: "nic" }] } } }),
    ]));
    await waitForPodsReady(pods, "default", 180);
    const net1s = await Promise.all(pods.map((pod) => podInterface(pod, "net1")));
    for (const net1 of net1s) assert.equal(net1?.kind, "macvlan", "Multus made a macvlan child of the parent");
    if (pods.length > 1) assert.notEqual(net1s[0]?.mac, net1s[1]?.mac);
    await deletePods(pods);
    await eventually("the parent as it was", async () => JSON.stringify(await parentState()) === JSON.stringify(parentBefore), 60_000);
    assert.deepEqual(await agent.journal(), [], "netclaim attached nothing itself");
  });

  it("refuses a claim that asks for an ipvlan child on a node whose kernel has none, at prepare, saying what to ask for", async () => {
    // The node runs on this machine's kernel, which has no ipvlan (the machine's notes say so).
    const probe = await runCommand("ip", ["link", "add", "link", PARENT, "name", "nce2ipvl", "type", "ipvlan"]);
    if (probe.code === 0) await runCommand("ip", ["link", "delete", "nce2ipvl"]);
    assert.match(probe.stderr, /Unknown device type/, "this kernel has ipvlan: the refusal cannot be shown here");
    const pod = uniqueName("e2e-sp-ipvlan");
    const claim = `${pod}-nic`;
    cleanup.defer(() => deleteObjects("resourceclaims.resource.k8s.io", [claim]));
    cleanup.defer(() => deletePods([pod]));
    const manifest = childClaim(claim, deviceClass, { name: "shared0" }) as { spec: { devices: { config: { opaque: { parameters: Record<string, unknown> } }[] } } };
    const parameters = manifest.spec.devices.config[0]?.opaque.parameters ?? {};
    parameters.child = { kind: "ipvlan", mode: "l3" };
    await apply(manifest, podWith(pod, claim));
    await eventually("the pod's prepare failure to name ipvlan", async () => {
      const events = await kubectlJson(["get", "events", "-n", "default", "--field-selector", `involvedObject.name=${pod}`], z.object({ items: z.array(z.object({ message: z.string().optional() })) }));
      return events.items.some((e) => /asks for an ipvlan child, but this node's kernel has no ipvlan; ask for child\.kind macvlan/.test(e.message ?? ""));
    }, 120_000);
    // Its claim holds one of the parent's interfaces until it is gone.
    await deletePods([pod]);
    await deleteObjects("resourceclaims.resource.k8s.io", [claim]);
  });

  if (consumableCapacity) {
    it(`leaves no orphan child and the parent unchanged when the agent is killed (-9) during a churn of ${String(CHURN_PODS)} pods`, async () => {
      const pods = Array.from({ length: CHURN_PODS }, (_, i) => uniqueName(`e2e-spc${String(i)}`));
      const claims = pods.map((pod) => `${pod}-nic`);
      cleanup.defer(() => deleteObjects("resourceclaims.resource.k8s.io", claims));
      cleanup.defer(() => deletePods(pods));
      const manifests = pods.flatMap((pod, i) => [childClaim(claims[i] ?? "", deviceClass, { name: "shared0" }), podWith(pod, claims[i] ?? "")]);
      const half = manifests.length / 2;
      await apply(...manifests.slice(0, half));
      await sleep(1_500);
      await agent.stop("SIGKILL");
      // Pods keep coming, and the first ones go, while the agent is down: their deletion
      // finishes once the agent is back to unprepare their claims.
      await apply(...manifests.slice(half));
      await kubectl(["delete", "pod", "-n", "default", "--wait=false", ...pods.slice(0, 4)]);
      await sleep(2_000);
      await agent.start();
      const running = pods.slice(4);
      await waitForPodsReady(running, "default", 600);
      for (const pod of running) {
        await eventually(`${pod} to have its child`, async () => (await podInterface(pod, "shared0"))?.kind === "macvlan", 60_000);
      }
      assert.equal((await agent.journal()).length, running.length, "one attachment per running pod: the deleted pods' are forgotten");
      await deletePods(running);
      await eventually("every child gone and the parent as it was", async () => JSON.stringify(await parentState()) === JSON.stringify(parentBefore), 120_000);
      assert.deepEqual(await agent.journal(), [], "nothing left in the journal");
    });
  } else {
    it("allocates the parent to one claim at a time on a release without consumable capacity", async () => {
      const pods = [uniqueName("e2e-sp1"), uniqueName("e2e-sp2")];
      const claims = pods.map((pod) => `${pod}-nic`);
      cleanup.defer(() => deleteObjects("resourceclaims.resource.k8s.io", claims));
      cleanup.defer(() => deletePods(pods));
      await apply(...pods.flatMap((pod, i) => [childClaim(claims[i] ?? "", deviceClass, { name: "shared0" }), podWith(pod, claims[i] ?? "")]));
      await eventually("one of the pods running", async () => (await Promise.all(pods.map((p) => getPod(p)))).some((p) => p.status.phase === "Running"), 180_000);
      await sleep(5_000);
      const phases = (await Promise.all(pods.map((p) => getPod(p)))).map((p) => p.status.phase ?? "");
      assert.deepEqual(phases.sort(), ["Pending", "Running"], "the other pod waits for the parent");
      const waiting = pods.find((_, i) => phases[i] === "Pending") ?? "";
      await deletePods(pods.filter((p) => p !== waiting));
      await waitForPodsReady([waiting], "default", 180);
      assert.equal((await podInterface(waiting, "shared0"))?.kind, "macvlan");
      await deletePods([waiting]);
      await eventually("the parent as it was", async () => JSON.stringify(await parentState()) === JSON.stringify(parentBefore), 60_000);
    });
  }

});
