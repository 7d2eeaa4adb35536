/**
 * The agent as users install, upgrade and uninstall it (issue 18), on the
 * real node. Every e2e test runs the agent installed (./agent.ts); these
 * test the installation itself:
 *
 * - with the Helm chart: the agent runs as the DaemonSet's pod under its own
 *   ServiceAccount, a pod gets its interface, the metrics count one prepare
 *   and one attach for it, and the device comes back when the pod goes;
 * - host-local's leases are the host's (/var/lib/cni/networks, the
 *   DaemonSet's /var/lib/cni mount): a Multus network and netclaim interfaces
 *   taking addresses from the same small range never get the same one, and
 *   the leases outlive an agent upgrade and are released by the new agent;
 * - an upgrade (a new image tag, `kubectl set image`) while 10 pods with
 *   claims start: every pod gets its interface, no prepare fails, every
 *   device comes back;
 * - the uninstall of docs/install.md, in its order: every host device is
 *   back with its name, MTU, MAC and addresses, and the node keeps only what
 *   the docs say stays.
 *
 * The stand-in NICs are veths, which die with a pod's namespace unless the
 * agent brought them back first: a device the agent lost would be missing.
 */
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { setTimeout as sleep } from "node:timers/promises";
import { AGENT_IMAGE, agentEndpoint, claimFields, claimTemplateFor, counterValue, createNicPair, deviceClassFor, E2eAgent, tagAgentImage, waitForPublished } from "./agent.ts";
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
  HOST_LOCAL_DIR,
  kubectl,
  kubectlJson,
  macvlanNetwork,
  networkStatus,
  node,
  pathExists,
  runCommand,
  uniqueName,
  waitForPodsReady,
  podInterface,
  hostDevices,
} from "./harness.ts";
import { cluster, requiredPluginVariant } from "../api/harness.ts";

const repo = new URL("../../", import.meta.url).pathname;

const eventListSchema = z.object({
  items: z.array(z.object({ involvedObject: z.object({ name: z.string() }), reason: z.string().optional(), message: z.string().optional() })),
});


describe("the agent installed with its Helm chart", { timeout: 600_000 }, () => {
  const PREFIX = "nce2h";
  const cleanup = new Cleanup();
  const deviceClass = uniqueName("e2e-helm");
  const template = uniqueName("e2e-helm");
  const podName = uniqueName("e2e-helm");
  const nics = [`${PREFIX}a`, `${PREFIX}b`];
  let agent: E2eAgent;
  let hostBefore: unknown;

  before(async () => {
    await node();
    const wire = await createNicPair(nics[0] ?? "", nics[1] ?? "");
    cleanup.defer(() => wire.remove());
    hostBefore = await hostDevices([nics[0] ?? ""]);
    agent = await E2eAgent.start({ nicGlob: `${PREFIX}*`, installer: "helm" });
    cleanup.defer(() => agent.remove());
    await apply(deviceClassFor(deviceClass, PREFIX), claimTemplateFor(template, deviceClass, { interface: { name: "dra0", mtu: 1400 } }));
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    cleanup.defer(() => deleteObjects("resourceclaimtemplates.resource.k8s.io", [template]));
    cleanup.defer(() => deletePods([podName]));
    await waitForPublished(PREFIX, nics.length);
  });
  after(() => cleanup.run());

  it("runs as the DaemonSet's pod with its own ServiceAccount and gives a pod its interface, one prepare and one attach", async () => {
    const serviceAccount = (await kubectl(["get", "pod", "-n", agent.namespace, agent.pod.metadata.name, "-o", "jsonpath={.spec.serviceAccountName}"])).trim();
    assert.equal(serviceAccount, "netclaim-agent");
    const release = await kubectl(["get", "daemonset", "-n", agent.namespace, "netclaim-agent", "-o", "jsonpath={.metadata.annotations.meta\\.helm\\.sh/release-name}"]);
    assert.equal(release.trim(), "netclaim", "the DaemonSet belongs to the Helm release");
    const before = (await agentEndpoint("/metrics")).body;
    await apply(busyboxPod({ name: podName, ...claimFields(template) }));
    await waitForPodsReady([podName]);
    assert.equal((await podInterface(podName))?.mtu, 1400);
    const afterStart = (await agentEndpoint("/metrics")).body;
    const delta = (name: string, labels: string): number => counterValue(afterStart, name, labels) - counterValue(before, name, labels);
    assert.equal(delta("netclaim_dra_claim_operations_total", 'operation="prepare",status="success"'), 1, "one prepare for the pod");
    assert.equal(delta("netclaim_engine_operations_total", 'operation="attach",status="success"'), 1, "one attach for the pod");
  });

  it("puts the device back on the host as it was when the pod is deleted", async () => {
    await deletePods([podName]);
    await eventually(`${nics[0] ?? ""} back on the host as it was`, async () => JSON.stringify(await hostDevices([nics[0] ?? ""])) === JSON.stringify(hostBefore), 60_000);
  });
});

describe("upgrading and uninstalling the agent installed with the kustomize overlay", { timeout: 1_200_000 }, () => {
  const PREFIX = "nce2u";
  const UPGRADED = `${AGENT_IMAGE}-e2e-upgrade`;
  const cleanup = new Cleanup();
  const deviceClass = uniqueName("e2e-upg");
  const plain = uniqueName("e2e-upg");
  const leased = uniqueName("e2e-upg-lease");
  const shared = uniqueName("e2e-shared");
  // Five wires, ten stand-in NICs, each with host addresses and an MTU of its own to restore.
  const nics = [0, 1, 2, 3, 4].flatMap((i) => [`${PREFIX}${String(i)}a`, `${PREFIX}${String(i)}b`]);
  const hostBefore = new Map<string, unknown>();
  let cdiSpecsBefore: string[] = [];
  let agent: E2eAgent;

  async function devicesAsBefore(): Promise<boolean> {
    for (const nic of nics) if (JSON.stringify(await hostDevices([nic])) !== JSON.stringify(hostBefore.get(nic))) return false;
    return true;
  }

  before(async () => {
    await node();
    for (let i = 0; i < nics.length; i += 2) {
      const wire = await createNicPair(nics[i] ?? "", nics[i + 1] ?? "");
      cleanup.defer(() => wire.remove());
    }
    for (const [i, nic] of nics.entries()) {
      await runCommand("ip", ["link", "set", nic, "mtu", String(1400 + i)]);
      await runCommand("ip", ["addr", "add", `fd00:e2::${(i + 1).toString(16)}/128`, "dev", nic]);
      await runCommand("ip", ["addr", "add", `198.18.200.${String(i + 1)}/32`, "dev", nic]);
      hostBefore.set(nic, await hostDevices([nic]));
    }
    cdiSpecsBefore = await readdir((await node()).cdiDir);
    const master = await createHostVeth(uniqueName("e2eu"));
    cleanup.defer(() => master.remove());
    agent = await E2eAgent.start({ nicGlob: `${PREFIX}*` });
    cleanup.defer(() => agent.remove());
    await apply(
      // Four addresses for two netclaim interfaces and two Multus networks.
      macvlanNetwork(shared, master.name, { subnet: "198.51.100.0/24", rangeStart: "198.51.100.60", rangeEnd: "198.51.100.63" }),
      deviceClassFor(deviceClass, PREFIX),
      claimTemplateFor(plain, deviceClass, { interface: { name: "dra0", mtu: 1300 } }),
      claimTemplateFor(leased, deviceClass, { interface: { name: "dra0" }, ipamFrom: { name: shared } }),
    );
    cleanup.defer(() => deleteNetwork(shared));
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    cleanup.defer(() => deleteObjects("resourceclaimtemplates.resource.k8s.io", [plain, leased]));
    await waitForPublished(PREFIX, nics.length);
  });
  after(() => cleanup.run());

  it("shares host-local's leases with Multus: never one address twice, leases on the host, kept across an upgrade, released after (4)", async () => {
    const withClaim = [uniqueName("e2e-lease-dra"), uniqueName("e2e-lease-dra")];
    const withNetwork = [uniqueName("e2e-lease-mv"), uniqueName("e2e-lease-mv")];
    const all = [...withClaim, ...withNetwork];
    cleanup.defer(() => deletePods(all));
    // Interleaved, so that both kinds allocate from the range at the same time.
    await apply(...withClaim.flatMap((name, i) => [
      busyboxPod({ name, ...claimFields(leased) }),
      busyboxPod({ name: withNetwork[i] ?? "", networks: [shared] }),
    ]));
    await waitForPodsReady(all);
    const addresses = async (): Promise<string[]> => [
      ...(await Promise.all(withClaim.map(async (pod) => addressOnly((await podInterface(pod))?.addresses[0] ?? "")))),
      ...(await Promise.all(withNetwork.map(async (pod) => (await networkStatus(pod)).find((s) => s.interface === "net1")?.ips?.[0] ?? ""))),
    ];
    const given = await addresses();
    assert.deepEqual([...given].sort(), ["198.51.100.60", "198.51.100.61", "198.51.100.62", "198.51.100.63"], `the four pods' addresses: ${given.join(", ")}`);
    const leaseDir = join(HOST_LOCAL_DIR, shared);
    const leases = async (): Promise<string[]> => ((await pathExists(leaseDir)) ? (await readdir(leaseDir)).filter((n) => /^\d/.test(n)).sort() : []);
    assert.deepEqual(await leases(), [...given].sort(), `the host's ${leaseDir} holds every pod's lease`);

    await tagAgentImage(UPGRADED);
    await agent.rollTo(UPGRADED);
    assert.equal(agent.pod.spec.containers[0]?.image, UPGRADED);
    assert.deepEqual(await addresses(), given, "every pod keeps its address across the upgrade");
    assert.deepEqual(await leases(), [...given].sort(), "the leases outlive the upgrade");

    await deletePods(all);
    // The new agent releases what the old one leased, when the kubelet unprepares the claims.
    await eventually("every lease released", async () => (await leases()).length === 0, 60_000);
    await eventually("every device back on the host as it was", devicesAsBefore, 60_000);
  });

  it("rolls the DaemonSet to a new image while 10 pods with claims start: every pod gets its interface, no prepare fails, every device comes back (5)", async () => {
    const pods = Array.from({ length: 10 }, (_, i) => uniqueName(`e2e-roll${String(i)}`));
    cleanup.defer(() => deletePods(pods));
    // The agent now runs UPGRADED (the test above): roll it back to the built tag while the pods
    // are created two at a time, so that some start beside both agents and some after the old one.
    const rollout = agent.rollTo(AGENT_IMAGE);
    rollout.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
    for (let i = 0; i < pods.length; i += 2) {
      await apply(...pods.slice(i, i + 2).map((name) => busyboxPod({ name, ...claimFields(plain) })));
      await sleep(1_000);
    }
    await rollout;
    const readyAtRollout = (await kubectl(["get", "pods", ...pods, "-o", "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}"])).split(" ").filter((s) => s === "True").length;
    console.log(`${String(readyAtRollout)} of ${String(pods.length)} pods were ready when the old agent had gone`);
    await waitForPodsReady(pods, "default", 300);
    for (const pod of pods) assert.equal((await podInterface(pod))?.mtu, 1300, `${pod} has its interface`);
    // The pods' names are new, so every event about them is from this test. Each pod's probes ask
    // its own agent, so the old pod went only once the new agent served: no prepare failed, and
    // the runtime never refused a container for want of netclaim's NRI plugin.
    const { items: events } = await kubectlJson(["get", "events"], eventListSchema);
    const failures = events
      .filter((e) => pods.includes(e.involvedObject.name))
      .filter((e) => e.reason === "FailedPrepareDynamicResources" || /required plugin/.test(e.message ?? ""))
      .map((e) => `${e.involvedObject.name}: ${e.reason ?? ""} ${e.message ?? ""}`);
    assert.deepEqual(failures, [], "no prepare failed and no container was refused during the rollout");
    await deletePods(pods);
    await eventually("every device back on the host as it was", devicesAsBefore, 60_000);
    assert.deepEqual((await readdir(join(agent.runtimeDir, "attachments"))).filter((n) => n.endsWith(".json")), [], "nothing left in the journal");
  });

  it("uninstalls in docs/install.md's order and leaves the node as the docs say", async () => {
    const env = await node();
    const pod = uniqueName("e2e-uninst");
    cleanup.defer(() => deletePods([pod]));
    await apply(busyboxPod({ name: pod, ...claimFields(plain) }));
    await waitForPodsReady([pod]);
    // 1. The workloads, until their pods are gone: the devices come back, the claims are unprepared.
    await deletePods([pod]);
    await eventually("every device back on the host as it was", devicesAsBefore, 60_000);
    const allocated = await kubectl(["get", "resourceclaims", "-A", "-o", "jsonpath={range .items[*]}{.status.allocation.devices.results[*].driver}{\"\\n\"}{end}"]);
    assert.doesNotMatch(allocated, /netclaim\.dev/, "no claim allocated from netclaim.dev is left");
    // 2. The required-plugin policy (put back afterwards: the other tests run with it).
    const variant = join(repo, "deploy/required-plugin", requiredPluginVariant((await cluster()).version));
    cleanup.defer(async () => {
      await kubectl(["apply", "-k", variant]);
    });
    await kubectl(["delete", "-k", variant, "--wait"]);
    // 3. The overlay.
    await agent.uninstall();

    for (const nic of nics) assert.deepEqual(await hostDevices([nic]), hostBefore.get(nic), `${nic} as it was`);
    const registry = await readdir(join(env.kubeletDir, "plugins_registry"));
    assert.deepEqual(registry.filter((name) => name.includes("netclaim")), [], "registration sockets removed");
    const pluginDir = join(env.kubeletDir, "plugins", "netclaim.dev");
    if (await pathExists(pluginDir)) assert.deepEqual(await readdir(pluginDir), [], "the kubelet plugin directory is empty");
    const mounts = (await runCommand("findmnt", ["-rno", "TARGET"])).stdout.split("\n");
    assert.deepEqual(mounts.filter((m) => m.includes("netclaim") || m.startsWith(agent.runtimeDir)), [], "no mount of the agent's left");
    assert.deepEqual(await readdir(env.cdiDir), cdiSpecsBefore, "no CDI spec left");
    // What stays (docs/install.md): the state directory, empty of claims, and the runtime directory's empty journal.
    assert.deepEqual(await readdir(join(agent.stateDir, "dra-claims")), [], "no prepared claim left in the state");
    assert.deepEqual((await readdir(join(agent.runtimeDir, "attachments"))).filter((n) => n.endsWith(".json")), [], "nothing left in the journal");
    assert.equal((await runCommand(env.kubectl, ["--kubeconfig", env.kubeconfig, "get", "namespace", "netclaim"])).code, 1, "the namespace is gone");
  });
});
