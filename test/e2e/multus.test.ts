/**
 * Acceptance test 3 on the real node: pods that use only the default network
 * and Multus (NetworkAttachmentDefinition) networks start and pass traffic,
 * exactly as on a node without netclaim. Whatever of netclaim is installed on
 * the node when this runs must leave these pods alone.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  Cleanup,
  addressOnly,
  apply,
  busyboxPod,
  createHostVeth,
  deleteNetwork,
  deletePods,
  getPod,
  HOST_LOCAL_DIR,
  macvlanNetwork,
  netnsInterfaces,
  networkStatus,
  node,
  pathExists,
  podCanPing,
  podSandbox,
  uniqueName,
  waitForPodsReady,
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
