// Claims to interfaces on the node simulator: the real scheduler allocates,
// the kubelet's own plugin code prepares, containerd/nri's runtime code starts
// the sandbox, and the kernel shows the result.
import { after, before, describe, it } from "node:test";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { waitFor } from "../api/harness.ts";
import type { ResourceClaim } from "../../src/kube/index.ts";
import { DRIVER, links, routes, SimNode } from "./harness.ts";
import { claimTemplate, deviceClass, pod, preparedPod, scheduledClaim, SIM_MULTUS_NETWORK } from "./objects.ts";

const NODE = "nc-sim-1";
const NS = "default";

describe("node simulator: claims to interfaces", { timeout: 240_000 }, () => {
  let node: SimNode;

  before(async () => {
    node = await SimNode.create(NODE, { nicPrefix: "ncsa" });
    await node.addNic("ncsa0");
    await node.addNic("ncsa1");
    await node.addNic("ncsm0"); // the "Multus" network's master; not published
    await node.startAgent();
    await node.apply(deviceClass());
    await node.apply(await readFile(new URL("../../hack/node/nad-crd.yaml", import.meta.url), "utf8"));
  });

  after(async () => {
    await node.cleanup();
  });

  it("attaches two devices with the claim's config next to Multus's net1, reports them, and restores the host exactly", async () => {
    await node.deletePod(NS, "sim-pod-a");
    const hostBefore = (await links()).filter((l) => l.ifname.startsWith("ncsa"));
    await node.apply(
      claimTemplate(NS, "sim-two", {
        interface: { name: "data0", mtu: 1400, addresses: ["198.51.100.10/24", "fd00:10::10/64"] },
        routes: [{ destination: "198.19.0.0/24", gateway: "198.51.100.1", table: 100 }],
      }),
    );
    await node.apply(pod(NS, NODE, "sim-pod-a", "sim-two"));
    const { pod: podObject, claim } = await scheduledClaim(node, NS, NODE, "sim-pod-a");
    const ref = { namespace: NS, name: claim.metadata.name, uid: claim.metadata.uid };

    const prepared = await node.kubelet.prepare(DRIVER, [ref]);
    const entry = prepared.response.claims?.[claim.metadata.uid];
    assert.equal(entry?.error ?? "", "", `prepare failed: ${entry?.error ?? ""}`);
    assert.equal(entry?.devices?.length, 2);

    const netns = await node.podNetns("ncsm0", "198.51.100.200/24");
    await node.startPod({ id: "sb-a", uid: podObject.metadata.uid, name: "sim-pod-a", namespace: NS, netns: `/var/run/netns/${netns}` });

    const inPod = await links(netns);
    const names = inPod.map((l) => l.ifname).sort();
    assert.deepEqual(names, ["data0", "lo", "nc0", "net1"]);
    const data0 = inPod.find((l) => l.ifname === "data0");
    assert.ok(data0);
    assert.equal(data0.mtu, 1400);
    assert.deepEqual(
      (data0.addr_info ?? []).filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`).sort(),
      ["198.51.100.10/24", "fd00:10::10/64"],
    );
    assert.ok((await routes(netns, 4, "100")).some((r) => r.dst === "198.19.0.0/24" && r.gateway === "198.51.100.1"));
    const leftBehind = (await links()).filter((l) => l.ifname === "ncsa0" || l.ifname === "ncsa1");
    assert.deepEqual(leftBehind, [], "both devices left the host");

    const status = await waitFor("claim status with both interfaces", async () => {
      const c = await node.c.admin.request<ResourceClaim>("GET", `/apis/resource.k8s.io/v1/namespaces/${NS}/resourceclaims/${claim.metadata.name}`);
      const devices = c.status?.devices ?? [];
      return devices.length === 2 && devices.every((d) => d.conditions?.some((k) => k.type === "Ready" && k.status === "True")) ? devices : undefined;
    });
    const byName = new Map(status.map((d) => [d.networkData?.interfaceName, d]));
    assert.deepEqual(byName.get("data0")?.networkData?.ips?.sort(), ["198.51.100.10/24", "fd00:10::10/64"]);
    assert.equal(byName.get("data0")?.conditions?.find((k) => k.type === "Ready")?.reason, "InterfaceAttached");
    assert.ok(byName.has("nc0"));

    await node.runtime.command("stopPod", { pod: { id: "sb-a", uid: podObject.metadata.uid, name: "sim-pod-a", namespace: NS, netns: `/var/run/netns/${netns}` } });
    const hostAfter = (await links()).filter((l) => l.ifname.startsWith("ncsa"));
    assert.deepEqual(normalise(hostAfter), normalise(hostBefore), "the host's view of the devices is as before");

    const unprepared = await node.kubelet.unprepare(DRIVER, [ref]);
    assert.equal(unprepared.response.claims?.[claim.metadata.uid]?.error ?? "", "");
    await waitFor("our claim status entries removed", async () => {
      const c = await node.c.admin.request<ResourceClaim>("GET", `/apis/resource.k8s.io/v1/namespaces/${NS}/resourceclaims/${claim.metadata.name}`);
      return (c.status?.devices ?? []).length === 0 ? true : undefined;
    });
    await node.deletePod(NS, "sim-pod-a");
  });

  it("fails prepare with the field path of a bad config, and records a Warning event on the claim", async () => {
    await node.deletePod(NS, "sim-pod-bad");
    await node.apply(claimTemplate(NS, "sim-bad", { interface: { mtu: 10 } }, ["data"]));
    await node.apply(pod(NS, NODE, "sim-pod-bad", "sim-bad"));
    const { claim } = await scheduledClaim(node, NS, NODE, "sim-pod-bad");
    const prepared = await node.kubelet.prepare(DRIVER, [{ namespace: NS, name: claim.metadata.name, uid: claim.metadata.uid }]);
    const error = prepared.response.claims?.[claim.metadata.uid]?.error ?? "";
    assert.match(error, /spec\.devices\.config\[0\]\.opaque\.parameters\.interface\.mtu: /);
    await waitFor("a Warning event on the claim", async () => {
      const events = await node.c.admin.request<{ items: { reason: string; type: string; message: string; involvedObject: { uid: string } }[] }>(
        "GET",
        `/api/v1/namespaces/${NS}/events`,
      );
      return events.items.some((e) => e.involvedObject.uid === claim.metadata.uid && e.type === "Warning" && /interface\.mtu/.test(e.message)) ? true : undefined;
    });
    await node.deletePod(NS, "sim-pod-bad");
  });

  it("takes addresses from a host-local NetworkAttachmentDefinition and gives them back at unprepare", async () => {
    await node.deletePod(NS, "sim-pod-ipam");
    const dataDir = await mkdtemp(join(tmpdir(), "nc-sim-ipam-"));
    const ipam = { type: "host-local", dataDir, ranges: [[{ subnet: "198.51.100.0/24", rangeStart: "198.51.100.50", rangeEnd: "198.51.100.50" }]] };
    await node.apply(`
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: { name: sim-pool, namespace: ${NS} }
spec:
  config: '${JSON.stringify({ cniVersion: "1.0.0", name: "sim-pool", type: "macvlan", master: "ncsm0", ipam })}'
`);
    await node.apply(claimTemplate(NS, "sim-ipam", { ipamFrom: { name: "sim-pool" } }, ["data"]));
    await node.apply(pod(NS, NODE, "sim-pod-ipam", "sim-ipam"));
    const { pod: podObject, claim } = await scheduledClaim(node, NS, NODE, "sim-pod-ipam");
    const ref = { namespace: NS, name: claim.metadata.name, uid: claim.metadata.uid };
    assert.equal((await node.kubelet.prepare(DRIVER, [ref])).response.claims?.[claim.metadata.uid]?.error ?? "", "");
    const netns = await node.podNetns("ncsm0", "198.51.100.210/24");
    const sandbox = { id: "sb-ipam", uid: podObject.metadata.uid, name: "sim-pod-ipam", namespace: NS, netns: `/var/run/netns/${netns}` };
    await node.startPod(sandbox);
    const nc0 = (await links(netns)).find((l) => l.ifname === "nc0");
    assert.deepEqual(nc0?.addr_info?.filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`), ["198.51.100.50/24"]);
    await node.runtime.command("stopPod", { pod: sandbox });
    assert.equal((await node.kubelet.unprepare(DRIVER, [ref])).response.claims?.[claim.metadata.uid]?.error ?? "", "");
    // The pool holds one address: a second claim can only get it if unprepare released it.
    await node.deletePod(NS, "sim-pod-ipam");
    await node.apply(pod(NS, NODE, "sim-pod-ipam", "sim-ipam"));
    const again = await scheduledClaim(node, NS, NODE, "sim-pod-ipam");
    const againRef = { namespace: NS, name: again.claim.metadata.name, uid: again.claim.metadata.uid };
    assert.equal((await node.kubelet.prepare(DRIVER, [againRef])).response.claims?.[again.claim.metadata.uid]?.error ?? "", "");
    await node.kubelet.unprepare(DRIVER, [againRef]);
    await node.deletePod(NS, "sim-pod-ipam");
  });

  /** A pod with one claim from a fresh template: scheduled, prepared, and a sandbox beside a "Multus" net1. */
  async function preparedSandbox(name: string, config: object, net1Address: string, options: { annotateAfterPrepare?: boolean } = {}) {
    await node.apply(claimTemplate(NS, `sim-${name}`, config, ["data"]));
    return preparedPod(node, { namespace: NS, nodeName: NODE, podName: `sim-pod-${name}`, template: `sim-${name}`, master: "ncsm0", net1Address, ...options });
  }

  /** Waits for our Ready=False condition with `reason` on the claim; returns that device's status. */
  async function failedCondition(claimName: string, reason: string) {
    return waitFor(`Ready=False ${reason} in the claim status`, async () => {
      const c = await node.c.admin.request<ResourceClaim>("GET", `/apis/resource.k8s.io/v1/namespaces/${NS}/resourceclaims/${claimName}`);
      return c.status?.devices?.find((d) => d.conditions?.some((k) => k.type === "Ready" && k.status === "False" && k.reason === reason));
    });
  }

  /** Waits until the pod has at least `count` NetworkDeviceAttachFailed events. */
  async function attachFailedEvents(podUID: string, count: number): Promise<void> {
    await waitFor(`${String(count)} NetworkDeviceAttachFailed event(s) on the pod`, async () => {
      const events = await node.c.admin.request<{ items: { reason: string; involvedObject: { uid: string } }[] }>("GET", `/api/v1/namespaces/${NS}/events`);
      return events.items.filter((e) => e.reason === "NetworkDeviceAttachFailed" && e.involvedObject.uid === podUID).length >= count ? true : undefined;
    });
  }

  it("fails prepare when a configured name is the net1 the pod's Multus annotation asks for, and says so on the claim and the pod", async () => {
    await node.deletePod(NS, "sim-pod-early");
    await node.apply(claimTemplate(NS, "sim-early", { interface: { name: "net1" } }, ["data"]));
    await node.apply(pod(NS, NODE, "sim-pod-early", "sim-early"));
    const { pod: podObject, claim } = await scheduledClaim(node, NS, NODE, "sim-pod-early");
    const ref = { namespace: NS, name: claim.metadata.name, uid: claim.metadata.uid };
    const clash = new RegExp(`"net1" in the pod: the name is already used by Multus network ${NS}/${SIM_MULTUS_NETWORK}, .*rename one of them`);
    const prepared = await node.kubelet.prepare(DRIVER, [ref]);
    assert.match(prepared.response.claims?.[claim.metadata.uid]?.error ?? "", clash);
    await waitFor("NetworkPrepareFailed events on the claim and the pod", async () => {
      const events = await node.c.admin.request<{ items: { reason: string; type: string; message: string; involvedObject: { uid: string } }[] }>("GET", `/api/v1/namespaces/${NS}/events`);
      const on = (uid: string) => events.items.some((e) => e.involvedObject.uid === uid && e.type === "Warning" && e.reason === "NetworkPrepareFailed" && clash.test(e.message));
      return on(claim.metadata.uid) && on(podObject.metadata.uid) ? true : undefined;
    });
    await node.kubelet.unprepare(DRIVER, [ref]);
    await node.deletePod(NS, "sim-pod-early");
  });

  it("fails the sandbox, moving nothing, when a configured name is Multus's net1 that prepare could not know of, and says so in status and events", async () => {
    const hostBefore = (await links()).filter((l) => l.ifname.startsWith("ncsa"));
    const { podUID, claimName, ref, netns, sandbox } = await preparedSandbox("clash", { interface: { name: "net1" } }, "198.51.100.220/24", { annotateAfterPrepare: true });
    // The pod's Multus annotation, added after prepare, tells whose net1 it is.
    await assert.rejects(node.startPod(sandbox), new RegExp(`"net1" in the pod: the name is already used by Multus network ${NS}/${SIM_MULTUS_NETWORK}`));
    assert.deepEqual((await links(netns)).map((l) => l.ifname).sort(), ["lo", "net1"]);
    assert.deepEqual(normalise((await links()).filter((l) => l.ifname.startsWith("ncsa"))), normalise(hostBefore), "nothing moved");
    const entry = await failedCondition(claimName, "InvalidConfig");
    assert.match(entry.conditions?.[0]?.message ?? "", /net1/);
    await attachFailedEvents(podUID, 1);
    await node.runtime.command("stopPod", { pod: sandbox });
    await node.kubelet.unprepare(DRIVER, [ref]);
    await node.deletePod(NS, sandbox.name);
  });

  it("fails the pod's container, not its sandbox, when the kernel refuses the configuration after the move, and retries with the next container", async () => {
    const hostBefore = (await links()).filter((l) => l.ifname.startsWith("ncsa"));
    // Valid as configuration, unknown to the kernel: only writing it in the pod can fail.
    const { podUID, claimName, ref, netns, sandbox } = await preparedSandbox("refused", { interface: { name: "data0", sysctls: { "ipv4.no_such_knob": "1" } } }, "198.51.100.221/24");
    const container = { id: `${sandbox.id}-app`, name: "app", podId: sandbox.id };
    await node.runtime.command("runPod", { pod: sandbox }); // checked and journaled: nothing known up front is wrong
    for (let attempt = 1; attempt <= 2; attempt++) {
      await assert.rejects(node.runtime.command("createContainer", { pod: sandbox, container }), /step configure: .*no_such_knob.*ENOENT/);
      assert.deepEqual((await links(netns)).map((l) => l.ifname).sort(), ["lo", "net1"], `attempt ${String(attempt)}: rolled back out of the pod`);
      assert.deepEqual(normalise((await links()).filter((l) => l.ifname.startsWith("ncsa"))), normalise(hostBefore), `attempt ${String(attempt)}: host as before`);
    }
    await failedCondition(claimName, "AttachFailed");
    await attachFailedEvents(podUID, 2); // one per attempt
    await node.runtime.command("stopPod", { pod: sandbox });
    await node.kubelet.unprepare(DRIVER, [ref]);
    await node.deletePod(NS, sandbox.name);
  });

  it("prepares Multus mode for a device without a PCI address (Multus gets its interface name)", async () => {
    await node.deletePod(NS, "sim-pod-multus");
    await node.apply(claimTemplate(NS, "sim-multus", { mode: "multus" }, ["data"]));
    await node.apply(pod(NS, NODE, "sim-pod-multus", "sim-multus"));
    const { claim } = await scheduledClaim(node, NS, NODE, "sim-pod-multus");
    const ref = { namespace: NS, name: claim.metadata.name, uid: claim.metadata.uid };
    assert.equal((await node.kubelet.prepare(DRIVER, [ref])).response.claims?.[claim.metadata.uid]?.error ?? "", "");
    assert.equal((await node.kubelet.unprepare(DRIVER, [ref])).response.claims?.[claim.metadata.uid]?.error ?? "", "");
    await node.deletePod(NS, "sim-pod-multus");
  });

  it("answers the kubelet's re-prepare after a reboot the same, with the CDI specs and metadata files the reboot wiped written again", async () => {
    await node.deletePod(NS, "sim-pod-reboot");
    await node.apply(claimTemplate(NS, "sim-reboot", { interface: { name: "data0" } }, ["data"]));
    await node.apply(pod(NS, NODE, "sim-pod-reboot", "sim-reboot"));
    const { claim } = await scheduledClaim(node, NS, NODE, "sim-pod-reboot");
    const ref = { namespace: NS, name: claim.metadata.name, uid: claim.metadata.uid };
    const first = (await node.kubelet.prepare(DRIVER, [ref])).response.claims?.[claim.metadata.uid];
    assert.equal(first?.error ?? "", "");
    const cdiDir = join(node.dir, "cdi");
    const metadataDir = join(node.dir, "run", "device-metadata", claim.metadata.uid);
    const written = async (): Promise<string[]> => [...(await readdir(cdiDir)).filter((f) => f.includes(claim.metadata.uid)), ...(await readdir(metadataDir, { recursive: true }))].sort();
    const before = await written();
    assert.ok(before.some((f) => f.endsWith("-metadata.json")), `no metadata file among ${before.join(", ")}`);
    assert.ok(before.length >= 3, `a device spec, a metadata spec and a metadata file: ${before.join(", ")}`);

    // What a reboot takes: /var/run/cdi and runtimeDir are tmpfs; the claim state (stateDir) stays.
    for (const file of (await readdir(cdiDir)).filter((f) => f.includes(claim.metadata.uid))) await rm(join(cdiDir, file));
    await rm(metadataDir, { recursive: true });
    const again = (await node.kubelet.prepare(DRIVER, [ref])).response.claims?.[claim.metadata.uid];
    assert.deepEqual(again, first, "the same devices and CDI ids");
    assert.deepEqual(await written(), before);
    assert.equal((await node.kubelet.unprepare(DRIVER, [ref])).response.claims?.[claim.metadata.uid]?.error ?? "", "");
    await node.deletePod(NS, "sim-pod-reboot");
  });

  it("leaves a pod that asks for more devices than the node has Pending with the scheduler's DRA reason", async () => {
    await node.deletePod(NS, "sim-pod-greedy");
    await node.apply(claimTemplate(NS, "sim-three", undefined, ["a", "b", "c"]));
    await node.apply(pod(NS, NODE, "sim-pod-greedy", "sim-three"));
    const condition = await waitFor("PodScheduled=False", async () => {
      const p = await node.c.admin.request<{ status?: { conditions?: { type: string; status: string; message?: string }[] } }>(
        "GET",
        `/api/v1/namespaces/${NS}/pods/sim-pod-greedy`,
      );
      return p.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
    });
    assert.match(condition.message ?? "", /cannot allocate all claims/);
    await node.deletePod(NS, "sim-pod-greedy");
  });
});

function normalise(list: Awaited<ReturnType<typeof links>>): unknown {
  return list
    .map((l) => ({ name: l.ifname, mtu: l.mtu, mac: l.address, addrs: (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`).sort() }))
    .sort((a, b) => a.name.localeCompare(b.name));
}
