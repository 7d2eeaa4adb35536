// Multus-delegated mode on the node simulator, with PCI NICs from a sysfs
// fixture (a ConnectX-class PF with VFs): netclaim prepares the claim and
// reports it, but never moves the device; Multus and a NetworkAttachmentDefinition
// carrying the published resourceName configure it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { join } from "node:path";
import { waitFor } from "../api/harness.ts";
import { connectxNode } from "../fixtures/nodes.ts";
import { writeSysfsFixture } from "../fixtures/sysfs-tree.ts";
import type { ResourceClaim } from "../../src/kube/index.ts";
import { DRIVER, links, SimNode } from "./harness.ts";
import { claimTemplate, deviceClass, pod, scheduledClaim } from "./objects.ts";

const NODE = "nc-sim-3";
const NS = "default";

describe("node simulator: Multus-delegated devices", { timeout: 240_000 }, () => {
  let node: SimNode;

  before(async () => {
    const root = await mkdtemp("/tmp/nc-sim-sysfs-");
    await writeSysfsFixture(root, connectxNode());
    node = await SimNode.create(NODE, { nicPrefix: "en", inventoryRoot: root });
    await node.addNic("ncsm3");
    await node.startAgent();
    await node.apply(deviceClass());
  });

  after(async () => {
    await node.cleanup();
  });

  it("publishes the Multus attributes, prepares without attaching, and reports DelegatedToMultus", async () => {
    const slices = await waitFor("a slice with Multus attributes", async () => {
      const list = await node.c.admin.request<{ items: { spec: { nodeName?: string; devices?: { name: string; attributes?: Record<string, { string?: string }> }[] } }[] }>(
        "GET",
        "/apis/resource.k8s.io/v1/resourceslices",
      );
      const devices = list.items.filter((s) => s.spec.nodeName === NODE).flatMap((s) => s.spec.devices ?? []);
      return devices.some((d) => d.attributes?.["k8s.cni.cncf.io/resourceName"] !== undefined) ? devices : undefined;
    });
    const withPci = slices.filter((d) => d.attributes?.["k8s.cni.cncf.io/deviceID"]?.string !== undefined);
    assert.ok(withPci.length > 0);

    await node.deletePod(NS, "sim-pod-mx");
    await node.apply(claimTemplate(NS, "sim-mx", { mode: "multus" }, ["data"]));
    await node.apply(pod(NS, NODE, "sim-pod-mx", "sim-mx"));
    const { pod: podObject, claim } = await scheduledClaim(node, NS, NODE, "sim-pod-mx");
    const ref = { namespace: NS, name: claim.metadata.name, uid: claim.metadata.uid };
    const prepared = await node.kubelet.prepare(DRIVER, [ref]);
    assert.equal(prepared.response.claims?.[claim.metadata.uid]?.error ?? "", "");
    // The fixture's functions are RDMA-capable: the pod gets their char devices through CDI.
    const [cdiId] = prepared.response.claims?.[claim.metadata.uid]?.devices?.[0]?.cdi_device_ids ?? [];
    assert.match(cdiId ?? "", /^netclaim\.dev\/device=/);
    const spec = JSON.parse(await readFile(join(node.dir, "cdi", `netclaim.dev-device_${(cdiId ?? "").split("=")[1] ?? ""}.json`), "utf8")) as {
      devices: { containerEdits: { deviceNodes: { path: string }[]; mounts?: unknown } }[];
    };
    assert.ok(spec.devices[0]?.containerEdits.deviceNodes.some((n) => n.path === "/dev/infiniband/rdma_cm"));
    // Multus attaches it in the sandbox's CNI ADD, which fails the sandbox itself: no attach gate.
    assert.equal(spec.devices[0]?.containerEdits.mounts, undefined);

    const netns = await node.podNetns("ncsm3", "198.51.100.230/24");
    await node.startPod({ id: "sb-mx", uid: podObject.metadata.uid, name: "sim-pod-mx", namespace: NS, netns: `/var/run/netns/${netns}` });
    assert.deepEqual((await links(netns)).map((l) => l.ifname).sort(), ["lo", "net1"], "netclaim moved nothing into the pod");

    const entry = await waitFor("DelegatedToMultus in the claim status", async () => {
      const c = await node.c.admin.request<ResourceClaim>("GET", `/apis/resource.k8s.io/v1/namespaces/${NS}/resourceclaims/${claim.metadata.name}`);
      return c.status?.devices?.find((d) => d.conditions?.some((k) => k.reason === "DelegatedToMultus"));
    });
    assert.match(entry.conditions?.[0]?.message ?? "", /k8s\.v1\.cni\.cncf\.io\/resourceName=netclaim\.dev\/netdev/);
    assert.equal(entry.networkData, undefined);
    await node.kubelet.unprepare(DRIVER, [ref]);
    await assert.rejects(readFile(join(node.dir, "cdi", `netclaim.dev-device_${(cdiId ?? "").split("=")[1] ?? ""}.json`)), { code: "ENOENT" }, "unprepare removed the CDI spec");
    await node.deletePod(NS, "sim-pod-mx");
  });
});
