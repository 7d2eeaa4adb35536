/**
 * Device health and device taints on the real node. Stand-in NICs are veths
 * whose host-side peer is their link partner: setting the peer down is the
 * cable pulled (the NIC loses its carrier, in a pod or on the host).
 *
 * Kubernetes 1.36+ (the containerd node runs the newest release): the agent
 * taints the device in its ResourceSlice within 5 s, the pod's status shows
 * it unhealthy (allocatedResourcesStatus, KEP-4680), the scheduler (1.37)
 * allocates a new pod the healthy free device and leaves a pod that only the
 * tainted one would fit Pending, and the carrier back clears all of it.
 * Kubernetes 1.34 (the CRI-O node, OpenShift 4.21): the agent starts, says
 * that device taints are off, and publishes none.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { k8sVersions, minorOf } from "../fixtures/k8s-versions.ts";
import { claimFields, claimTemplateFor, deviceClassFor, DRIVER, E2eAgent, waitForPublished } from "./agent.ts";
import { apply, busyboxPod, Cleanup, createHostVeth, deleteObjects, deletePods, eventually, kubectl, kubectlJson, node, runCommand, uniqueName, waitForPodsReady } from "./harness.ts";

const NIC_PREFIX = "nce2h";
const TAINT_KEY = `${DRIVER}/unhealthy`;

const slicesSchema = z.object({
  items: z.array(
    z.object({
      spec: z.object({
        devices: z
          .array(
            z.object({
              name: z.string(),
              attributes: z.record(z.string(), z.object({ string: z.string().optional() })).optional(),
              taints: z.array(z.object({ key: z.string(), value: z.string().optional(), effect: z.string() })).optional(),
            }),
          )
          .optional(),
      }),
    }),
  ),
});

interface PublishedDevice {
  name: string;
  ifName: string;
  taints: { key: string; value?: string | undefined; effect: string }[];
}

/** This node's netclaim devices whose host name starts with the prefix, by host interface name. */
async function published(): Promise<Map<string, PublishedDevice>> {
  const env = await node();
  const slices = await kubectlJson(["get", "resourceslices", "--field-selector", `spec.nodeName=${env.nodeName},spec.driver=${DRIVER}`], slicesSchema);
  const devices = slices.items.flatMap((s) => s.spec.devices ?? []).map((d) => ({ name: d.name, ifName: d.attributes?.[`${DRIVER}/ifName`]?.string ?? "", taints: d.taints ?? [] }));
  return new Map(devices.filter((d) => d.ifName.startsWith(NIC_PREFIX)).map((d) => [d.ifName, d]));
}

const podSchema = z.object({
  status: z.object({
    phase: z.string().optional(),
    conditions: z.array(z.object({ type: z.string(), status: z.string(), message: z.string().optional() })).optional(),
    resourceClaimStatuses: z.array(z.object({ resourceClaimName: z.string().optional() })).optional(),
    containerStatuses: z
      .array(z.object({ allocatedResourcesStatus: z.array(z.object({ name: z.string(), resources: z.array(z.object({ resourceID: z.string(), health: z.string().optional() })).optional() })).optional() }))
      .optional(),
  }),
});

const claimSchema = z.object({ status: z.object({ allocation: z.object({ devices: z.object({ results: z.array(z.object({ device: z.string() })) }) }).optional() }).optional() });

/** The DRA device the pod's claim was allocated. */
async function allocatedDevice(pod: string): Promise<string> {
  const { status } = await kubectlJson(["get", "pod", pod], podSchema);
  const claim = status.resourceClaimStatuses?.[0]?.resourceClaimName ?? "";
  const allocated = await kubectlJson(["get", "resourceclaim", claim], claimSchema);
  return allocated.status?.allocation?.devices.results[0]?.device ?? "";
}

/** The health the pod's status reports for its claimed device ("" while it reports none). */
async function reportedHealth(pod: string): Promise<string> {
  const { status } = await kubectlJson(["get", "pod", pod], podSchema);
  return status.containerStatuses?.[0]?.allocatedResourcesStatus?.[0]?.resources?.[0]?.health ?? "";
}

async function setLinkPartner(nic: string, state: "up" | "down"): Promise<void> {
  const set = await runCommand("ip", ["link", "set", `${nic}p`, state]);
  assert.equal(set.code, 0, set.stderr);
}

/** Waits at most `ms` for `check`, and says how long it took. */
async function within(ms: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  await eventually(what, check, ms);
  return Date.now() - started;
}

const release = k8sVersions().current;
const taintsKept = minorOf(release) >= 36;

describe(`device health and taints on the real node (Kubernetes ${release})`, { timeout: 300_000 }, () => {
  const cleanup = new Cleanup();
  const template = uniqueName("e2e-health");
  const deviceClass = uniqueName("e2e-health");
  const nics = [`${NIC_PREFIX}a`, `${NIC_PREFIX}b`, `${NIC_PREFIX}c`];
  const inUse = uniqueName("e2e-health-a");
  const second = uniqueName("e2e-health-b");
  const third = uniqueName("e2e-health-c");
  let agent: E2eAgent;
  let podNic = "";

  const podFor = (name: string) => {
    const fields = claimFields(template);
    return busyboxPod({ name, spec: fields.spec, container: fields.container });
  };

  before(async () => {
    await node();
    for (const nic of nics) {
      await runCommand("ip", ["link", "delete", nic]);
      const veth = await createHostVeth(nic);
      cleanup.defer(() => veth.remove());
    }
    agent = await E2eAgent.start({ nicGlob: `${NIC_PREFIX}?` });
    cleanup.defer(() => agent.remove());
    await apply(deviceClassFor(deviceClass, NIC_PREFIX), claimTemplateFor(template, deviceClass, { interface: { name: "hl0" } }));
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    cleanup.defer(() => deleteObjects("resourceclaimtemplates.resource.k8s.io", [template]));
    cleanup.defer(() => deletePods([inUse, second, third]));
    await waitForPublished(NIC_PREFIX, nics.length);
    await apply(podFor(inUse));
    await waitForPodsReady([inUse]);
    const device = await allocatedDevice(inUse);
    podNic = [...(await published()).values()].find((d) => d.name === device)?.ifName ?? "";
    assert.ok(podNic, `the pod's device ${device} is not among the published ones`);
  });
  after(() => cleanup.run());

  if (taintsKept) {
    it("taints a device in a pod within 5 s of its carrier going, shows it unhealthy in the pod's status, and clears both when it is back", async () => {
      await setLinkPartner(podNic, "down");
      const tainted = await within(5_000, `a taint on ${podNic}`, async () => (await published()).get(podNic)?.taints.some((t) => t.key === TAINT_KEY && t.value === "LinkDown") === true);
      console.log(`${podNic} tainted ${String(tainted)} ms after its carrier went`);
      assert.deepEqual((await published()).get(podNic)?.taints, [{ key: TAINT_KEY, value: "LinkDown", effect: "NoSchedule" }]);
      await eventually("the pod's status to show its device unhealthy", async () => (await reportedHealth(inUse)) === "Unhealthy", 30_000);
      // kubectl describe pod (1.37) does not print allocatedResourcesStatus; docs/troubleshooting.md shows this query.
      const shown = await kubectl(["get", "pod", inUse, "-o", "jsonpath={.status.containerStatuses[0].allocatedResourcesStatus}"]);
      assert.match(shown, /"health":"Unhealthy"/);
      assert.match(shown, new RegExp(`"name":"claim:nic"`));

      await setLinkPartner(podNic, "up");
      await within(5_000, `${podNic}'s taint to go`, async () => (await published()).get(podNic)?.taints.length === 0);
      await eventually("the pod's status to show its device healthy", async () => (await reportedHealth(inUse)) === "Healthy", 30_000);
    });

    it("keeps new pods off a tainted free device while a healthy one is free, and leaves one that only it would fit Pending until it is healthy", async () => {
      const free = nics.filter((nic) => nic !== podNic);
      const [broken = "", healthy = ""] = free;
      await setLinkPartner(broken, "down");
      cleanup.defer(() => setLinkPartner(broken, "up"));
      await within(5_000, `a taint on the free ${broken}`, async () => (await published()).get(broken)?.taints.some((t) => t.key === TAINT_KEY) === true);

      await apply(podFor(second));
      await waitForPodsReady([second]);
      const devices = await published();
      assert.equal(await allocatedDevice(second), devices.get(healthy)?.name, `the new pod was not given the healthy ${healthy}`);

      await apply(podFor(third));
      await eventually("the scheduler to leave the pod Pending for want of a device", async () => {
        const { status } = await kubectlJson(["get", "pod", third], podSchema);
        const scheduled = status.conditions?.find((c) => c.type === "PodScheduled");
        return scheduled?.status === "False" && /cannot allocate all claims/.test(scheduled.message ?? "");
      });

      await setLinkPartner(broken, "up");
      await within(5_000, `${broken}'s taint to go`, async () => (await published()).get(broken)?.taints.length === 0);
      await waitForPodsReady([third]);
      assert.equal(await allocatedDevice(third), devices.get(broken)?.name);
    });
  } else {
    it("says device taints are off on this release and publishes none, even for a device without carrier", async () => {
      assert.match(await agent.logs(), /device taints are off: Kubernetes v1\.\d+\.\d+ keeps them only with the DRADeviceTaints feature gate/);
      await setLinkPartner(podNic, "down");
      cleanup.defer(() => setLinkPartner(podNic, "up"));
      // The agent polls pods' links every 2 s: give it twice that to show it does not taint.
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      assert.deepEqual([...(await published()).values()].flatMap((d) => d.taints), []);
    });
  }
});
