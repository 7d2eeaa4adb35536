/**
 * One ResourceClaim, two pods, on the real node. The scheduler reserves the
 * claim for both, but the kubelet prepares it once (for the first), so only
 * netclaim's NRI handler can tell the second pod apart: its sandbox must be
 * refused, again on every retry of the kubelet, with an error naming the
 * claim and the pod that holds the device, and a Warning event on the pod;
 * the first pod keeps its interface. Once the first pod is deleted, the
 * second starts on the kubelet's next retry, with the device configured
 * before its container's first command runs.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { createNicPair, deviceClassFor, DRIVER, E2eAgent, waitForPublished } from "./agent.ts";
import {
  Cleanup,
  apply,
  busyboxPod,
  deleteObjects,
  deletePods,
  eventually,
  getPod,
  kubectl,
  kubectlJson,
  node,
  runCommand,
  uniqueName,
  waitForPodsReady,
  podInterface,
} from "./harness.ts";

const NIC_PREFIX = "nce2s";
const ADDRESS = "198.51.100.77/24";

const eventsSchema = z.object({
  items: z.array(z.object({ type: z.string(), reason: z.string(), message: z.string().optional(), count: z.number().optional() })),
});

/** The pod's events; `count` is how often the event recorder saw it (it aggregates repeats). */
async function podEvents(name: string): Promise<{ type: string; reason: string; message: string; count: number }[]> {
  const { items } = await kubectlJson(["get", "events", "-n", "default", "--field-selector", `involvedObject.kind=Pod,involvedObject.name=${name}`], eventsSchema);
  return items.map((e) => ({ type: e.type, reason: e.reason, message: e.message ?? "", count: e.count ?? 1 }));
}


const containerStatusesSchema = z.object({
  status: z.object({ containerStatuses: z.array(z.object({ state: z.record(z.string(), z.unknown()) })).optional() }),
});

describe("a ResourceClaim shared by two pods", { timeout: 600_000 }, () => {
  const cleanup = new Cleanup();
  const deviceClass = uniqueName("e2e-sc");
  const claim = uniqueName("e2e-sc");
  const [first, second] = [uniqueName("e2e-sc-1"), uniqueName("e2e-sc-2")];
  const nics = [`${NIC_PREFIX}a`, `${NIC_PREFIX}b`];
  let agent: E2eAgent;

  // The container's first command reports what it sees of dra0.
  const sharing = (name: string) =>
    busyboxPod({
      name,
      spec: { resourceClaims: [{ name: "nic", resourceClaimName: claim }] },
      container: {
        resources: { claims: [{ name: "nic" }] },
        command: ["/bin/sh", "-c", "ip -o -4 addr show dev dra0 || echo 'no dra0'; trap 'exit 0' TERM; sleep 86400 & wait"],
      },
    });

  before(async () => {
    await node();
    const wire = await createNicPair(nics[0] ?? "", nics[1] ?? "");
    cleanup.defer(() => wire.remove());
    agent = await E2eAgent.start({ nicGlob: `${NIC_PREFIX}*` });
    cleanup.defer(() => agent.remove());
    await apply(deviceClassFor(deviceClass, NIC_PREFIX), {
      apiVersion: "resource.k8s.io/v1",
      kind: "ResourceClaim",
      metadata: { name: claim, namespace: "default" },
      spec: {
        devices: {
          requests: [{ name: "nic", exactly: { deviceClassName: deviceClass } }],
          config: [{ opaque: { driver: DRIVER, parameters: { apiVersion: "netclaim.dev/v1alpha1", kind: "NetworkConfig", interface: { name: "dra0", mtu: 1350, addresses: [ADDRESS] } } } }],
        },
      },
    });
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    cleanup.defer(() => deleteObjects("resourceclaims.resource.k8s.io", [claim]));
    cleanup.defer(() => deletePods([first, second]));
    await waitForPublished(NIC_PREFIX, nics.length);
    await apply(sharing(first));
    await waitForPodsReady([first]);
  });
  after(() => cleanup.run());

  it("refuses the second pod's sandbox on every retry, naming the claim and the holder, and leaves the first pod its device", async () => {
    assert.deepEqual((await podInterface(first))?.addresses, [ADDRESS]);
    await apply(sharing(second));
    await eventually("the scheduler to reserve the claim for both pods", async () => {
      const reserved = await kubectl(["get", "resourceclaim", claim, "-o", "jsonpath={.status.reservedFor[*].name}"]);
      return reserved.split(/\s+/).includes(second);
    }, 60_000);
    // Two refusals: the kubelet's first try and at least one retry.
    await eventually("the runtime to refuse the second pod's sandbox twice", async () => {
      const refusals = (await podEvents(second)).filter((e) => e.reason === "FailedCreatePodSandBox" && e.message.includes(`claim default/${claim}`));
      return refusals.reduce((n, e) => n + e.count, 0) >= 2;
    }, 120_000);
    const events = await podEvents(second);
    const sandboxFailure = events.find((e) => e.reason === "FailedCreatePodSandBox");
    assert.match(sandboxFailure?.message ?? "", new RegExp(`claim default/${claim} \\(device ${NIC_PREFIX}[ab]\\) is in use by pod default/${first} \\(uid [0-9a-f-]+\\)`));
    const warning = events.find((e) => e.reason === "NetworkClaimInUse");
    assert.equal(warning?.type, "Warning");
    assert.match(warning.message, /a claim of its own with a ResourceClaimTemplate/);
    console.log(`events of the second pod:\n${events.map((e) => `${e.type} ${e.reason}: ${e.message}`).join("\n")}`);

    const pod = await getPod(second);
    assert.equal(pod.status.phase, "Pending");
    const { status } = await kubectlJson(["get", "pod", second], containerStatusesSchema);
    assert.ok((status.containerStatuses ?? []).every((c) => !("running" in c.state)), "no container of the second pod ever ran");
    const containers = await runCommand((await node()).crictl, ["--config", (await node()).crictlConfig, "ps", "-a", "--label", `io.kubernetes.pod.name=${second}`, "-q"]);
    assert.equal(containers.stdout.trim(), "", "the runtime created no container for the second pod");

    assert.deepEqual((await podInterface(first))?.addresses, [ADDRESS], "the first pod keeps its interface, configured");
    assert.equal((await podInterface(first))?.mtu, 1350);
    assert.match(await kubectl(["logs", first]), new RegExp(`dra0\\s+inet ${ADDRESS.replace(/\./g, "\\.")}`));
    const described = await kubectl(["describe", "resourceclaim", claim]);
    assert.match(described, /InterfaceAttached/, "the claim still reports the first pod's interface");
  });

  it("starts the second pod with the device once the first is deleted", async () => {
    await deletePods([first]);
    await waitForPodsReady([second], "default", 300);
    assert.deepEqual((await podInterface(second))?.addresses, [ADDRESS]);
    assert.match(await kubectl(["logs", second]), new RegExp(`dra0\\s+inet ${ADDRESS.replace(/\./g, "\\.")}`), "dra0 was there before the container's first command");
    // Events go out through the status reporter, after the attach: not necessarily before the pod is Ready.
    await eventually("a NetworkClaimHandedOver event on the second pod", async () => (await podEvents(second)).some((e) => e.reason === "NetworkClaimHandedOver" && e.type === "Normal"));
  });

  it("puts the device back and unprepares the claim when the second pod goes too", async () => {
    await deletePods([second]);
    await eventually("both stand-in NICs back on the host", async () => {
      const { stdout } = await runCommand("ip", ["-o", "link", "show"]);
      return nics.every((nic) => new RegExp(`: ${nic}[@:]`).test(stdout));
    });
    const claims = `${agent.stateDir}/dra-claims`;
    await eventually("the kubelet to unprepare the claim (our state directory empty)", async () => {
      const { stdout, code } = await runCommand("sh", ["-c", `test -d ${claims} && ls ${claims} | wc -l`]);
      assert.equal(code, 0, `${claims} does not exist`);
      return stdout.trim() === "0";
    }, 60_000);
  });
});
