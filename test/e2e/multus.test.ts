/**
 * Acceptance tests 3 and 8 on the real node, with the node's Multus thin or
 * thick (NETCLAIM_MULTUS, hack/node/multus.sh). 3: pods that use only the
 * default network and Multus (NetworkAttachmentDefinition) networks start and
 * pass traffic, exactly as on a node without netclaim; whatever of netclaim is
 * installed on the node when this runs must leave these pods alone. 8: a
 * device claimed in mode multus is found by Multus's DRA path and configured
 * by the NetworkAttachmentDefinition's CNI plugin, and the claim reports it.
 * And a netclaim interface whose configured name is the one the pod's Multus
 * annotation gives a network fails the claim's prepare (issue 24), before any
 * sandbox is tried, and the pod runs once one side is renamed.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { claimFields, claimTemplateFor, createNicPair, deviceClassFor, DRIVER, E2eAgent, waitForPublished } from "./agent.ts";
import {
  Cleanup,
  addressOnly,
  apply,
  busyboxPod,
  createHostVeth,
  crictl,
  deleteNetwork,
  deleteObjects,
  deletePods,
  eventually,
  getPod,
  hostDevices,
  HOST_LOCAL_DIR,
  kubectl,
  kubectlJson,
  macvlanNetwork,
  netnsInterfaces,
  networkStatus,
  node,
  pathExists,
  podCanPing,
  podInterface,
  podSandbox,
  uniqueName,
  waitForPodsReady,
  type Manifest,
  type NetnsInterface,
} from "./harness.ts";

const macvlanRange = { subnet: "198.51.100.0/24", rangeStart: "198.51.100.200", rangeEnd: "198.51.100.219" };

/** Whether `address` lies in the IPv4 `cidr`. */
function inCidr(address: string, cidr: string): boolean {
  const [base = "", bits = "32"] = cidr.split("/");
  const toNumber = (ip: string) => ip.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
  const size = 2 ** (32 - Number(bits));
  return Math.floor(toNumber(address) / size) === Math.floor(toNumber(base) / size);
}

function byName(interfaces: readonly NetnsInterface[]): Map<string, NetnsInterface> {
  return new Map(interfaces.map((link) => [link.name, link]));
}

describe("pods with only the default and Multus networks (acceptance 3)", () => {
  const cleanup = new Cleanup();
  const nad = uniqueName("e2e-macvlan");
  const plain = uniqueName("e2e-plain");
  const multusA = uniqueName("e2e-multus-a");
  const multusB = uniqueName("e2e-multus-b");
  let podCidr: string;

  before(async () => {
    podCidr = (await node()).podCidr;
    const master = await createHostVeth(uniqueName("e2em"));
    cleanup.defer(() => master.remove());
    await apply(macvlanNetwork(nad, master.name, macvlanRange));
    cleanup.defer(() => deleteNetwork(nad));
    cleanup.defer(() => deletePods([plain, multusA, multusB]));
    await apply(
      busyboxPod({ name: plain }),
      busyboxPod({ name: multusA, networks: [nad] }),
      busyboxPod({ name: multusB, networks: [nad] }),
    );
    await waitForPodsReady([plain, multusA, multusB]);
  });
  after(() => cleanup.run());

  it("runs a pod without secondary networks with one address from the default bridge network", async () => {
    const pod = await getPod(plain);
    assert.equal(pod.status.phase, "Running");
    const podIp = pod.status.podIP ?? "";
    assert.ok(inCidr(podIp, podCidr), `pod IP ${podIp} is not in the default network ${podCidr}`);
    const links = byName(await netnsInterfaces((await podSandbox(plain)).netnsPath));
    assert.deepEqual([...links.keys()].sort(), ["eth0", "lo"]);
    assert.deepEqual(links.get("eth0")?.addresses.map(addressOnly), [podIp]);
  });

  it("gives a Multus pod net1 from its NetworkAttachmentDefinition, as the network-status annotation reports", async () => {
    const pod = await getPod(multusA);
    const status = await networkStatus(multusA);
    assert.deepEqual(status.map((s) => [s.name, s.interface, s.default ?? false]), [
      ["nc-default", "eth0", true],
      [`default/${nad}`, "net1", false],
    ]);
    const [defaultNet, secondary] = status;
    assert.deepEqual(defaultNet?.ips, [pod.status.podIP]);
    const net1Ip = secondary?.ips?.[0] ?? "";
    assert.ok(inCidr(net1Ip, macvlanRange.subnet), `net1 address ${net1Ip} is not in ${macvlanRange.subnet}`);

    // What the annotation claims is what the pod's network namespace holds.
    const links = byName(await netnsInterfaces((await podSandbox(multusA)).netnsPath));
    assert.deepEqual([...links.keys()].sort(), ["eth0", "lo", "net1"]);
    const net1 = links.get("net1");
    assert.equal(net1?.kind, "macvlan");
    assert.equal(net1.up, true);
    assert.equal(net1.mac, secondary?.mac);
    assert.deepEqual(net1.addresses, [`${net1Ip}/24`]);
    assert.deepEqual(links.get("eth0")?.addresses.map(addressOnly), [pod.status.podIP]);
  });

  it("passes traffic between two Multus pods over net1 and over the default network", async () => {
    const net1Of = async (name: string) => (await networkStatus(name)).find((s) => s.interface === "net1")?.ips?.[0] ?? "";
    const [aNet1, bNet1] = [await net1Of(multusA), await net1Of(multusB)];
    assert.notEqual(aNet1, bNet1);
    assert.ok(await podCanPing(multusA, bNet1), `${multusA} cannot reach ${multusB} at ${bNet1} over net1`);
    assert.ok(await podCanPing(multusB, aNet1), `${multusB} cannot reach ${multusA} at ${aNet1} over net1`);
    const plainIp = (await getPod(plain)).status.podIP ?? "";
    assert.ok(await podCanPing(multusA, plainIp), `${multusA} cannot reach ${plain} at ${plainIp} over eth0`);
  });

  it("removes the pod's network namespace and releases its net1 address when the pod is deleted", async () => {
    const { netnsPath } = await podSandbox(multusB);
    const net1Ip = (await networkStatus(multusB)).find((s) => s.interface === "net1")?.ips?.[0] ?? "";
    const lease = `${HOST_LOCAL_DIR}/${nad}/${net1Ip}`;
    assert.ok(await pathExists(lease), `no host-local lease ${lease} while the pod runs`);
    await deletePods([multusB]);
    // The kubelet stops the sandbox (CNI DEL) before it lets the pod object go.
    assert.equal(await pathExists(netnsPath), false, `network namespace ${netnsPath} outlived the pod`);
    assert.equal(await pathExists(lease), false, `host-local lease ${lease} outlived the pod`);
  });
});

const MULTUS_NIC_PREFIX = "nce2mx";

const slicesSchema = z.object({
  items: z.array(z.object({
    spec: z.object({
      devices: z.array(z.object({ name: z.string(), attributes: z.record(z.string(), z.object({ string: z.string().optional() })).optional() })).optional(),
    }),
  })),
});

/** The string attributes this node's netclaim publishes for `device`. */
async function publishedAttributes(device: string): Promise<Record<string, string | undefined>> {
  const env = await node();
  const slices = await kubectlJson(["get", "resourceslices", "--field-selector", `spec.nodeName=${env.nodeName},spec.driver=${DRIVER}`], slicesSchema);
  const found = slices.items.flatMap((slice) => slice.spec.devices ?? []).find((d) => d.name === device);
  if (found === undefined) throw new Error(`device ${device} is not in this node's ResourceSlices`);
  return Object.fromEntries(Object.entries(found.attributes ?? {}).map(([name, value]) => [name, value.string]));
}

/** A NetworkAttachmentDefinition that Multus's DRA path fills in: host-device on the claimed device, a static address. */
function hostDeviceNetwork(name: string, resourceName: string, address: string): Manifest {
  // host-device takes Multus's deviceID for a PCI address; the stand-in NIC is a veth, which
  // netclaim gives Multus by name: the node's host-device-by-name passes that on (docs/multus.md).
  const config = { cniVersion: "1.0.0", name, type: "host-device-by-name", ipam: { type: "static", addresses: [{ address }] } };
  return {
    apiVersion: "k8s.cni.cncf.io/v1",
    kind: "NetworkAttachmentDefinition",
    metadata: { name, namespace: "default", labels: { "netclaim.dev/test": "e2e" }, annotations: { "k8s.v1.cni.cncf.io/resourceName": resourceName } },
    spec: { config: JSON.stringify(config) },
  };
}

const claimStatusSchema = z.object({
  status: z.object({
    devices: z.array(z.object({
      device: z.string(),
      conditions: z.array(z.object({ type: z.string(), reason: z.string() })).optional(),
      networkData: z.object({ interfaceName: z.string().optional(), ips: z.array(z.string()).optional(), hardwareAddress: z.string().optional() }).optional(),
    })).optional(),
  }).optional(),
});

/** The stand-in NIC `nic` (its wire's other end `peer` stays on the host), published by an agent of its own; the NIC as the host had it. */
async function publishedNic(cleanup: Cleanup, nic: string, peer: string): Promise<Awaited<ReturnType<typeof hostDevices>>> {
  const wire = await createNicPair(nic, peer);
  cleanup.defer(() => wire.remove());
  const before = await hostDevices([nic]);
  const agent = await E2eAgent.start({ nicGlob: nic });
  cleanup.defer(() => agent.remove());
  await waitForPublished(nic, 1);
  return before;
}

describe("a device handed to Multus through its DRA path (acceptance 8)", { timeout: 300_000 }, () => {
  const cleanup = new Cleanup();
  const nic = `${MULTUS_NIC_PREFIX}a`;
  const nad = uniqueName("e2e-hostdev");
  const template = uniqueName("e2e-mx");
  const deviceClass = uniqueName("e2e-mx");
  const pod = uniqueName("e2e-mx");
  const address = "198.51.100.250/24";
  let hostBefore: Awaited<ReturnType<typeof hostDevices>>;
  let attributes: Record<string, string | undefined>;

  before(async () => {
    await node();
    hostBefore = await publishedNic(cleanup, nic, `${MULTUS_NIC_PREFIX}b`);
    attributes = await publishedAttributes(nic);

    await apply(
      hostDeviceNetwork(nad, attributes["k8s.cni.cncf.io/resourceName"] ?? "", address),
      deviceClassFor(deviceClass, nic),
      claimTemplateFor(template, deviceClass, { mode: "multus" }),
    );
    cleanup.defer(() => deleteObjects("network-attachment-definitions.k8s.cni.cncf.io", [nad]));
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    cleanup.defer(() => deleteObjects("resourceclaimtemplates.resource.k8s.io", [template]));
    cleanup.defer(() => deletePods([pod]));
    const fields = claimFields(template);
    await apply(busyboxPod({ name: pod, networks: [nad], spec: fields.spec, container: fields.container }));
    await waitForPodsReady([pod]);
  });
  after(() => cleanup.run());

  it("publishes the device's name as its Multus deviceID (it has no PCI address)", () => {
    assert.equal(attributes["k8s.cni.cncf.io/deviceID"], nic);
    assert.equal(attributes["k8s.cni.cncf.io/resourceName"], "netclaim.dev/netdev");
  });

  it("gives the pod the claimed device as net1, configured by the NetworkAttachmentDefinition", async () => {
    const net1 = await podInterface(pod, "net1");
    assert.ok(net1, "no net1 in the pod");
    assert.equal(net1.mac, hostBefore[0]?.mac, "net1 is not the claimed device (its MAC differs)");
    assert.equal(net1.mac, attributes[`${DRIVER}/mac`], "net1 is not the device netclaim published");
    assert.deepEqual(net1.addresses, [address]);
    const status = (await networkStatus(pod)).find((s) => s.interface === "net1");
    assert.equal(status?.name, `default/${nad}`);
    assert.deepEqual(status.ips, [addressOnly(address)]);
  });

  it("reports the claim as DelegatedToMultus with the interface Multus made of it", async () => {
    const claim = (await kubectl(["get", "pod", pod, "-o", "jsonpath={.status.resourceClaimStatuses[0].resourceClaimName}"])).trim();
    const net1 = await podInterface(pod, "net1");
    const claimDevice = async () => (await kubectlJson(["get", "resourceclaim", claim], claimStatusSchema)).status?.devices?.find((d) => d.device === nic);
    await eventually("the claim's status to show net1", async () => (await claimDevice())?.networkData?.interfaceName === "net1");
    const device = await claimDevice();
    assert.ok(device);
    assert.equal(device.conditions?.find((c) => c.type === "Ready")?.reason, "DelegatedToMultus");
    assert.deepEqual(device.networkData, { interfaceName: "net1", ips: [address], hardwareAddress: net1?.mac });
  });

  it("keeps the device in the node's ResourceSlice while Multus has it in the pod, off the host's scans", async () => {
    assert.equal(await podInterface(pod, "net1").then((l) => l?.mac), hostBefore[0]?.mac, "the device is in the pod");
    assert.deepEqual(await publishedAttributes(nic), attributes, "published as before the pod started");
  });

  it("puts the device back on the host when the pod is deleted", async () => {
    await deletePods([pod]);
    await eventually("the device back on the host as it was", async () => JSON.stringify(await hostDevices([nic])) === JSON.stringify(hostBefore));
  });
});

const CLASH_NIC_PREFIX = "nce2cl";

const eventsSchema = z.object({
  items: z.array(z.object({ type: z.string(), reason: z.string(), message: z.string().optional() })),
});

/** The events of one object, as `kubectl get events` has them. */
async function eventsOf(kind: string, name: string): Promise<{ type: string; reason: string; message: string }[]> {
  const { items } = await kubectlJson(["get", "events", "--field-selector", `involvedObject.kind=${kind},involvedObject.name=${name}`], eventsSchema);
  return items.map((e) => ({ type: e.type, reason: e.reason, message: e.message ?? "" }));
}

describe("a netclaim interface named like the pod's Multus network (issue 24)", { timeout: 300_000 }, () => {
  const cleanup = new Cleanup();
  const nic = `${CLASH_NIC_PREFIX}a`;
  // One name serves the network, the template and the device class; the pods have their own.
  const [nad, clashing, renamed] = [uniqueName("e2e-clash"), uniqueName("e2e-clash"), uniqueName("e2e-clash-ok")];
  const [template, deviceClass] = [nad, nad];
  const range = { subnet: "198.51.100.0/24", rangeStart: "198.51.100.236", rangeEnd: "198.51.100.239" };
  const fields = claimFields(template);
  let hostBefore: Awaited<ReturnType<typeof hostDevices>>;

  before(async () => {
    await node();
    const master = await createHostVeth(uniqueName("e2ec"));
    cleanup.defer(() => master.remove());
    await apply(macvlanNetwork(nad, master.name, range));
    cleanup.defer(() => deleteNetwork(nad));
    hostBefore = await publishedNic(cleanup, nic, `${CLASH_NIC_PREFIX}b`);
    // The claim asks for net1, which Multus gives the first network of the annotation.
    await apply(deviceClassFor(deviceClass, nic), claimTemplateFor(template, deviceClass, { interface: { name: "net1", addresses: ["198.18.0.10/24"] } }));
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    cleanup.defer(() => deleteObjects("resourceclaimtemplates.resource.k8s.io", [template]));
    cleanup.defer(() => deletePods([clashing, renamed]));
  });
  after(() => cleanup.run());

  it("fails the claim's prepare, naming the Multus network and what to rename, and never tries the pod's sandbox", async () => {
    await apply(busyboxPod({ name: clashing, networks: [nad], spec: fields.spec, container: fields.container }));
    const clash = new RegExp(`"net1" in the pod: the name is already used by Multus network default/${nad}, .*rename one of them`);
    let claim = "";
    await eventually("a NetworkPrepareFailed event on the claim", async () => {
      claim = (await kubectl(["get", "pod", clashing, "-o", "jsonpath={.status.resourceClaimStatuses[0].resourceClaimName}"])).trim();
      return claim !== "" && (await eventsOf("ResourceClaim", claim)).some((e) => e.type === "Warning" && e.reason === "NetworkPrepareFailed" && clash.test(e.message));
    }, 60_000);
    await eventually("the kubelet's FailedPrepareDynamicResources event on the pod", async () =>
      (await eventsOf("Pod", clashing)).some((e) => e.reason === "FailedPrepareDynamicResources" && clash.test(e.message)));
    const pod = await getPod(clashing);
    assert.equal(pod.status.phase, "Pending");
    assert.deepEqual((await eventsOf("Pod", clashing)).filter((e) => e.reason === "FailedCreatePodSandBox"), [], "no sandbox was tried");
    assert.equal((await crictl(["pods", "-q", "--label", `io.kubernetes.pod.uid=${pod.metadata.uid}`])).trim(), "", "the runtime has no sandbox of the pod");
    assert.deepEqual(await hostDevices([nic]), hostBefore, "the device stayed on the host");
  });

  it("runs the pod once the Multus network's interface is renamed: netclaim's net1 beside Multus's mx0", async () => {
    await deletePods([clashing]);
    await apply(busyboxPod({ name: renamed, networks: [`${nad}@mx0`], spec: fields.spec, container: fields.container }));
    await waitForPodsReady([renamed]);
    const net1 = await podInterface(renamed, "net1");
    assert.equal(net1?.mac, hostBefore[0]?.mac, "net1 is netclaim's device");
    assert.deepEqual(net1?.addresses, ["198.18.0.10/24"]);
    assert.equal((await podInterface(renamed, "mx0"))?.kind, "macvlan");
    assert.equal((await networkStatus(renamed)).find((s) => s.name === `default/${nad}`)?.interface, "mx0");
  });
});
