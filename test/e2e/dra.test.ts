/**
 * Acceptance tests 1, 2 and 4 on the real node: pods get netclaim DRA
 * interfaces from a ResourceClaimTemplate next to a Multus network, traffic
 * flows over both, `kubectl describe resourceclaim` shows the interface, and
 * deleting the pods puts the devices back on the host as they were.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { claimFields, claimTemplateFor, createNicPair, deviceClassFor, E2eAgent, waitForPublished } from "./agent.ts";
import {
  Cleanup,
  configureHostSide,
  addressOnly,
  apply,
  busyboxPod,
  createHostVeth,
  deleteNetwork,
  deleteObjects,
  deletePods,
  eventually,
  kubectl,
  macvlanNetwork,
  netnsInterfaces,
  networkStatus,
  node,
  podCanPing,
  podSandbox,
  runCommand,
  uniqueName,
  waitForPodsReady,
  hostDevices,
} from "./harness.ts";

const NIC_PREFIX = "nce2d";

describe("pods with netclaim DRA interfaces and Multus networks (acceptance 1, 2, 4)", { timeout: 300_000 }, () => {
  const cleanup = new Cleanup();
  const nad = uniqueName("e2e-mv");
  const pool = uniqueName("e2e-pool");
  const template = uniqueName("e2e-dra");
  const deviceClass = uniqueName("e2e-netclaim");
  const pods = [uniqueName("e2e-dra-a"), uniqueName("e2e-dra-b")];
  // One veth pair: each end is a published "NIC"; the two pods get one end each and are wired together.
  const nics = [`${NIC_PREFIX}a`, `${NIC_PREFIX}b`];
  let agent: E2eAgent;
  let hostBefore: unknown;

  before(async () => {
    await node();
    const wire = await createNicPair(nics[0] ?? "", nics[1] ?? "");
    cleanup.defer(() => wire.remove());
    // Host state worth restoring, as a NIC in use on a node has: on CRI-O, which removes the pod's
    // namespace before it tells netclaim the pod stopped (cri-o#9905), it all comes back too.
    for (const [i, nic] of nics.entries()) await configureHostSide(nic, i + 1);
    hostBefore = await hostDevices(nics);
    const master = await createHostVeth(uniqueName("e2em"));
    cleanup.defer(() => master.remove());

    agent = await E2eAgent.start({ nicGlob: `${NIC_PREFIX}*` });
    cleanup.defer(() => agent.remove());

    await apply(
      macvlanNetwork(nad, master.name, { subnet: "198.51.100.0/24", rangeStart: "198.51.100.220", rangeEnd: "198.51.100.229" }),
      macvlanNetwork(pool, master.name, { subnet: "198.51.100.0/24", rangeStart: "198.51.100.230", rangeEnd: "198.51.100.239" }),
      deviceClassFor(deviceClass, NIC_PREFIX),
      claimTemplateFor(template, deviceClass, { interface: { name: "dra0", mtu: 1400 }, ipamFrom: { name: pool } }),
    );
    cleanup.defer(() => deleteNetwork(nad));
    cleanup.defer(() => deleteNetwork(pool));
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    cleanup.defer(() => deleteObjects("resourceclaimtemplates.resource.k8s.io", [template]));
    cleanup.defer(() => deletePods(pods));
    await waitForPublished(NIC_PREFIX, nics.length);
    // The container's first command reports what it sees of dra0: the runtime must not
    // create it before netclaim attached and configured the interface.
    const fields = claimFields(template);
    const firstLook = "ip -o -4 addr show dev dra0; cat /sys/class/net/dra0/mtu; trap 'exit 0' TERM; sleep 86400 & wait";
    await apply(...pods.map((name) => busyboxPod({ name, networks: [nad], spec: fields.spec, container: { ...fields.container, command: ["/bin/sh", "-c", firstLook] } })));
    await waitForPodsReady(pods);
  });
  after(() => cleanup.run());

  it("configures the claimed interface as the claim says, and kubectl describe resourceclaim shows it (1)", async () => {
    const [podA = ""] = pods;
    const links = await netnsInterfaces((await podSandbox(podA)).netnsPath);
    const dra0 = links.find((l) => l.name === "dra0");
    assert.ok(dra0, `no dra0 in ${links.map((l) => l.name).join(",")}`);
    assert.equal(dra0.mtu, 1400);
    assert.equal(dra0.up, true);
    const [address = ""] = dra0.addresses;
    assert.match(address, /^198\.51\.100\.23\d\/24$/);

    const claimName = (await kubectl(["get", "pod", podA, "-o", "jsonpath={.status.resourceClaimStatuses[0].resourceClaimName}"])).trim();
    let described = "";
    await eventually("the claim status to show dra0", async () => {
      described = await kubectl(["describe", "resourceclaim", claimName]);
      return described.includes("dra0") && described.includes("InterfaceAttached");
    });
    assert.match(described, /Interface Name:\s+dra0/);
    assert.ok(described.includes(address), `describe does not show ${address}:\n${described}`);
    assert.ok(described.includes(dra0.mac ?? "?"), "describe shows the MAC");
    console.log(`kubectl describe resourceclaim ${claimName}:\n${described}`);
  });

  it("has the interface configured before the container's first command runs", async () => {
    for (const name of pods) {
      const firstLook = await kubectl(["logs", name]);
      assert.match(firstLook, /dra0\s+inet 198\.51\.100\.23\d\/24/, `${name} started before dra0 had its address:\n${firstLook}`);
      assert.match(firstLook, /^1400$/m, `${name} started before dra0 had its MTU:\n${firstLook}`);
    }
  });

  it("passes traffic between the two pods over the DRA interfaces and over Multus's net1 (2)", async () => {
    const [podA = "", podB = ""] = pods;
    const draAddress = async (pod: string): Promise<string> =>
      addressOnly((await netnsInterfaces((await podSandbox(pod)).netnsPath)).find((l) => l.name === "dra0")?.addresses[0] ?? "");
    const net1Address = async (pod: string): Promise<string> => (await networkStatus(pod)).find((s) => s.interface === "net1")?.ips?.[0] ?? "";
    assert.ok(await podCanPing(podA, await draAddress(podB)), "A reaches B over dra0");
    assert.ok(await podCanPing(podB, await draAddress(podA)), "B reaches A over dra0");
    assert.ok(await podCanPing(podA, await net1Address(podB)), "A reaches B over net1");
  });

  it("puts the devices back on the host as they were when the pods are deleted (4)", async () => {
    await deletePods(pods);
    await eventually("both devices back on the host as they were", async () => JSON.stringify(await hostDevices(nics)) === JSON.stringify(hostBefore));
    // The directory exists once a claim was prepared: a wrong path must fail, not read as "empty".
    const claims = `${agent.stateDir}/dra-claims`;
    await eventually("the kubelet unprepared the claims (our state is empty)", async () => {
      const { stdout, code } = await runCommand("sh", ["-c", `test -d ${claims} && ls ${claims} | wc -l`]);
      assert.equal(code, 0, `${claims} does not exist`);
      return stdout.trim() === "0";
    });
  });
});
