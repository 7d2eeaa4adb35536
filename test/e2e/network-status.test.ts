/**
 * The network-status opt-in on the real node (docs/multus.md, "The
 * network-status annotation"), with the agent installed as users install it:
 * with deploy/components/network-status, a pod with a Multus network and a
 * netclaim interface lists eth0, Multus's net1 and netclaim's interface in its
 * `k8s.v1.cni.cncf.io/network-status` annotation; without it (the default)
 * the annotation is what Multus wrote, byte for byte, and the agent never
 * wrote the pod at all.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { claimFields, claimTemplateFor, createNicPair, deviceClassFor, DRIVER, E2eAgent, waitForPublished } from "./agent.ts";
import {
  Cleanup,
  addressOnly,
  apply,
  busyboxPod,
  createHostVeth,
  deleteNetwork,
  deleteObjects,
  deletePods,
  eventually,
  getPod,
  kubectl,
  kubectlJson,
  macvlanNetwork,
  networkStatus,
  networkStatusText,
  node,
  podInterface,
  uniqueName,
  waitForPodsReady,
} from "./harness.ts";

const PREFIX = "nce2n";
const MACVLAN_RANGE = { subnet: "198.51.100.0/24", rangeStart: "198.51.100.240", rangeEnd: "198.51.100.249" };
const INTERFACE = { name: "dra0", mtu: 1400, addresses: ["198.51.100.61/24"] };

/** The generated claim behind the pod's one resourceClaims entry. */
async function claimOf(pod: string): Promise<string> {
  return (await kubectl(["get", "pod", pod, "-o", "jsonpath={.status.resourceClaimStatuses[0].resourceClaimName}"])).trim();
}

const managedFieldsSchema = z.object({
  metadata: z.object({ managedFields: z.array(z.object({ manager: z.string(), subresource: z.string().optional(), fieldsV1: z.unknown().optional() })).default([]) }),
});

/** Who wrote which fields of the pod: the agent writes as its driver name (network-status-writer.ts). */
async function netclaimWrites(pod: string): Promise<z.infer<typeof managedFieldsSchema>["metadata"]["managedFields"]> {
  const { metadata } = await kubectlJson(["get", "pod", pod, "--show-managed-fields"], managedFieldsSchema);
  return metadata.managedFields.filter((entry) => entry.manager === DRIVER);
}

/** Until the claim's status says the interface is attached: by then the pod's attach has finished. */
async function attachReported(claim: string): Promise<void> {
  await eventually(`claim ${claim} to report ${INTERFACE.name} attached`, async () => {
    const status = await kubectl(["get", "resourceclaim", claim, "-o", "jsonpath={.status.devices[*].networkData.interfaceName}"]);
    return status.split(/\s+/).includes(INTERFACE.name);
  });
}

describe("the network-status opt-in", { timeout: 600_000 }, () => {
  const cleanup = new Cleanup();
  const nad = uniqueName("e2e-mv");
  const template = uniqueName("e2e-ns");
  const deviceClass = uniqueName("e2e-netclaim");
  const nics = [`${PREFIX}a`, `${PREFIX}b`];

  before(async () => {
    await node();
    const wire = await createNicPair(nics[0] ?? "", nics[1] ?? "");
    cleanup.defer(() => wire.remove());
    const master = await createHostVeth(uniqueName("e2em"));
    cleanup.defer(() => master.remove());
    await apply(
      macvlanNetwork(nad, master.name, MACVLAN_RANGE),
      deviceClassFor(deviceClass, PREFIX),
      claimTemplateFor(template, deviceClass, { interface: INTERFACE }),
    );
    cleanup.defer(() => deleteNetwork(nad));
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    cleanup.defer(() => deleteObjects("resourceclaimtemplates.resource.k8s.io", [template]));
  });
  after(() => cleanup.run());

  /** The agent installed with or without the opt-in, and one pod with the Multus network and a netclaim interface. */
  function podWithBoth(optIn: boolean): { pod: string } {
    const pod = uniqueName(optIn ? "e2e-ns-on" : "e2e-ns-off");
    const local = new Cleanup();
    before(async () => {
      const agent = await E2eAgent.start({ nicGlob: `${PREFIX}*`, networkStatus: optIn });
      local.defer(() => agent.remove());
      await waitForPublished(PREFIX, nics.length);
      local.defer(() => deletePods([pod]));
      const fields = claimFields(template);
      await apply(busyboxPod({ name: pod, networks: [nad], spec: fields.spec, container: fields.container }));
      await waitForPodsReady([pod]);
    });
    after(() => local.run());
    return { pod };
  }

  describe("on (deploy/components/network-status)", () => {
    const { pod } = podWithBoth(true);

    it("lists eth0, Multus's net1 and netclaim's interface, named after its claim", async () => {
      const claim = await claimOf(pod);
      const ours = `${DRIVER}/default/${claim}/nic`;
      await eventually("netclaim's entry in the pod's network-status", async () => (await networkStatus(pod)).some((entry) => entry.name === ours));
      const status = await networkStatus(pod);
      assert.deepEqual(status.map((entry) => [entry.name, entry.interface, entry.default ?? false]), [
        ["nc-default", "eth0", true],
        [`default/${nad}`, "net1", false],
        [ours, INTERFACE.name, false],
      ]);
      // Multus's entries are its own: eth0's address is the pod's.
      assert.deepEqual(status[0]?.ips, [(await getPod(pod)).status.podIP]);
      // Ours says what the pod's namespace holds.
      const dra0 = await podInterface(pod, INTERFACE.name);
      assert.ok(dra0, `no ${INTERFACE.name} in pod ${pod}`);
      const [, , entry] = status;
      assert.ok(entry);
      assert.deepEqual(entry.ips, INTERFACE.addresses.map(addressOnly));
      assert.deepEqual(dra0.addresses, INTERFACE.addresses);
      assert.equal(entry.mac, dra0.mac);
      assert.equal(entry.mtu, INTERFACE.mtu);
    });

    it("writes the pod through its status subresource only", async () => {
      const writes = await netclaimWrites(pod);
      assert.deepEqual(writes.map((w) => w.subresource), ["status"]);
      assert.deepEqual(writes[0]?.fieldsV1, { "f:metadata": { "f:annotations": { "f:k8s.v1.cni.cncf.io/network-status": {} } } });
    });
  });

  describe("off (the default)", () => {
    const { pod } = podWithBoth(false);

    it("leaves the annotation exactly as Multus wrote it and never writes the pod", async () => {
      const written = await networkStatusText(pod);
      assert.deepEqual((await networkStatus(pod)).map((entry) => [entry.name, entry.interface]), [
        ["nc-default", "eth0"],
        [`default/${nad}`, "net1"],
      ]);
      await attachReported(await claimOf(pod));
      // Were the opt-in on, the write would follow the attach at once, as the status report does.
      await sleep(5_000);
      assert.equal(await networkStatusText(pod), written);
      assert.deepEqual(await netclaimWrites(pod), []);
    });
  });
});
