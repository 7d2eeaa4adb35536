/**
 * The node's containerd serves NRI on the socket `node.sh env` names, and
 * netclaim's NRI plugin (src/nri) receives RunPodSandbox there after CNI ran:
 * the pod's network namespace already holds the Multus secondary interface.
 * This is the moment netclaim's agent configures its own interfaces.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createNriPlugin, type NriPlugin, type PodSandboxInfo } from "../../src/nri/index.ts";
import {
  Cleanup,
  NODE_RUNTIME,
  RUNTIME_IDENTITY,
  apply,
  busyboxPod,
  createHostVeth,
  deleteNetwork,
  deletePods,
  getPod,
  macvlanNetwork,
  netnsInterfaces,
  networkStatus,
  node,
  podSandbox,
  uniqueName,
  waitForPodsReady,
  type NetnsInterface,
} from "./harness.ts";

const macvlanRange = { subnet: "198.51.100.0/24", rangeStart: "198.51.100.220", rangeEnd: "198.51.100.229" };

interface SandboxSeen {
  readonly pod: PodSandboxInfo;
  /** The interfaces in the pod's network namespace while the handler ran. */
  readonly interfaces: readonly NetnsInterface[];
}

describe(`${NODE_RUNTIME}'s NRI socket on the node`, () => {
  const cleanup = new Cleanup();
  const nad = uniqueName("e2e-nri-net");
  const podName = uniqueName("e2e-nri");
  const seen: SandboxSeen[] = [];
  const handlerErrors: unknown[] = [];
  let plugin: NriPlugin;

  before(async () => {
    const env = await node();
    const master = await createHostVeth(uniqueName("e2en"));
    cleanup.defer(() => master.remove());
    await apply(macvlanNetwork(nad, master.name, macvlanRange));
    cleanup.defer(() => deleteNetwork(nad));

    plugin = createNriPlugin(
      {
        async runPodSandbox(pod) {
          if (pod.name !== podName) return;
          try {
            const interfaces = pod.netnsPath === undefined ? [] : await netnsInterfaces(pod.netnsPath);
            seen.push({ pod, interfaces });
          } catch (error) {
            handlerErrors.push(error);
          }
        },
      },
      { socketPath: env.nriSocket, pluginName: "e2e-probe", pluginIndex: "90" },
    );
    cleanup.defer(() => plugin.close());
    plugin.start();
    await plugin.whenConnected(AbortSignal.timeout(10_000));
  });
  after(() => cleanup.run());

  it("registers netclaim's plugin and describes the runtime", () => {
    assert.equal(plugin.state, "connected");
    assert.equal(plugin.runtime?.runtimeName, RUNTIME_IDENTITY.nriName);
    assert.match(plugin.runtime.runtimeVersion, RUNTIME_IDENTITY.nriVersion);
    // The node's runtime: 2 s per request, the budget netclaim's handlers live in.
    assert.equal(plugin.runtime.requestTimeoutMs, 2000);
  });

  it("delivers RunPodSandbox with the pod's netns path, after Multus attached net1 there", async () => {
    cleanup.defer(() => deletePods([podName]));
    await apply(busyboxPod({ name: podName, networks: [nad] }));
    await waitForPodsReady([podName]);

    assert.deepEqual(handlerErrors, []);
    assert.equal(seen.length, 1, `expected one RunPodSandbox for ${podName}, got ${String(seen.length)}`);
    const [{ pod, interfaces } = { pod: undefined, interfaces: [] }] = seen;
    const k8sPod = await getPod(podName);
    assert.equal(pod?.uid, k8sPod.metadata.uid);
    assert.equal(pod.namespace, "default");
    assert.equal(pod.netnsPath, (await podSandbox(podName)).netnsPath);
    assert.deepEqual(pod.ips, [k8sPod.status.podIP]);

    const net1Status = (await networkStatus(podName)).find((s) => s.interface === "net1");
    const net1 = interfaces.find((link) => link.name === "net1");
    assert.ok(net1 !== undefined, `net1 missing from the netns at RunPodSandbox; saw ${interfaces.map((l) => l.name).join(", ")}`);
    assert.equal(net1.mac, net1Status?.mac);
    assert.deepEqual(net1.addresses, [`${net1Status?.ips?.[0] ?? "?"}/24`]);
  });
});
