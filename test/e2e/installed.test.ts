/**
 * The agent as users install it, on the real node: its image (`make image`)
 * imported into the node's containerd, the shipped Kubernetes overlay
 * (`kubectl kustomize deploy/overlays/kubernetes`) applied with the test
 * node's paths put in, so the agent runs as the DaemonSet's pod with its own
 * ServiceAccount token, RBAC and admission policies. A pod's claim gets its
 * interface, and the device is back on the host as it was once the pod is
 * deleted; the metrics count the pod's prepare and attach; the readiness
 * endpoint follows the agent's NRI connection across a containerd restart;
 * uninstalling leaves no socket or mount of the agent's.
 *
 * What the test changes in the shipped objects, and why (a user with a
 * non-default kubelet root directory or CNI paths changes the same):
 * - host paths: the test node keeps the kubelet in /var/lib/nc-kubelet, the
 *   NRI socket and pod network namespaces under /tmp/nc-node/run, CDI specs
 *   in /tmp/nc-node/cdi and CNI plugins in /usr/lib/cni; the agent's
 *   configuration says so;
 * - the API server: the test cluster has no Service network, so the agent
 *   reaches the API server on the node's loopback (KUBERNETES_SERVICE_HOST);
 * - the image is never pulled (imagePullPolicy Never), and the pod is pinned
 *   to the test node (the suites' other Node objects have no kubelet).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { agentEndpoint, claimFields, claimTemplateFor, counterValue, createNicPair, deviceClassFor, waitForPublished } from "./agent.ts";
import {
  Cleanup,
  apply,
  busyboxPod,
  deleteObjects,
  deletePods,
  eventually,
  kubectl,
  kubectlJson,
  netnsInterfaces,
  node,
  podSandbox,
  restartNodeComponent,
  runCommand,
  uniqueName,
  waitForPodsReady,
  type Manifest,
  type NodeEnv,
} from "./harness.ts";

const repo = new URL("../../", import.meta.url).pathname;
const NIC_PREFIX = "nce2i";
const NAMESPACE = "netclaim";
const DAEMONSET = "netclaim-agent";
/** Host directories the shipped DaemonSet mounts that the test node does not use otherwise. */
const AGENT_HOST_DIRS = ["/var/lib/netclaim", "/run/netclaim"];

type Json = Record<string, unknown>;

/** The Kubernetes overlay as shipped, with the test node's paths, loopback API server and local image. */
async function installManifests(env: NodeEnv): Promise<Json[]> {
  const { stdout } = await runCommand(env.kubectl, ["kustomize", join(repo, "deploy/overlays/kubernetes")]);
  const objects = parseAllDocuments(stdout).flatMap((doc) => (doc.contents === null ? [] : [doc.toJS() as Json]));
  const nodeRun = join(env.nriSocket, "..");
  const hostPaths: Record<string, string> = {
    "kubelet-plugins": join(env.kubeletDir, "plugins"),
    "kubelet-registry": join(env.kubeletDir, "plugins_registry"),
    nri: nodeRun,
    cdi: env.cdiDir,
    "cni-bin": "/usr/lib/cni",
    "cni-state": join(nodeRun, "netclaim-cni"),
    "cni-conf": join(nodeRun, "netclaim-cni-conf"),
    "dev-infiniband": join(nodeRun, "netclaim-dev-infiniband"),
    // Mounted with HostToContainer propagation, which needs a shared mount: the node's /run/netns
    // is not one until `ip netns add` made it, and the node's run directory is (hack/node).
    netns: join(nodeRun, "netclaim-netns"),
  };
  // The kubelet and the runtime get paths from the agent (registration socket, NRI socket, pod
  // namespaces): those are mounted at the host's own path.
  const samePath = new Set(["kubelet-plugins", "kubelet-registry", "nri"]);
  for (const object of objects) {
    const metadata = object["metadata"] as Json;
    if (object["kind"] === "ConfigMap" && metadata["name"] === "netclaim-agent-config") {
      object["data"] = {
        "agent.yaml": JSON.stringify({
          apiVersion: "netclaim.dev/v1alpha1",
          kind: "AgentConfig",
          kubelet: { rootDir: env.kubeletDir },
          nri: { socketPath: env.nriSocket },
          devices: { include: [{ ifName: `${NIC_PREFIX}*`, kinds: ["veth"] }] },
        }),
      };
    }
    if (object["kind"] !== "DaemonSet") continue;
    const pod = ((object["spec"] as Json)["template"] as Json)["spec"] as Json;
    pod["nodeSelector"] = { "kubernetes.io/hostname": env.nodeName };
    const volumes = pod["volumes"] as { name: string; hostPath?: { path: string } }[];
    for (const volume of volumes) {
      const path = hostPaths[volume.name];
      if (path !== undefined && volume.hostPath !== undefined) volume.hostPath.path = path;
    }
    const [container] = pod["containers"] as Json[];
    assert.ok(container);
    container["imagePullPolicy"] = "Never";
    container["env"] = [...(container["env"] as Json[]), { name: "KUBERNETES_SERVICE_HOST", value: "127.0.0.1" }, { name: "KUBERNETES_SERVICE_PORT", value: "16443" }];
    for (const mount of container["volumeMounts"] as { name: string; mountPath: string; mountPropagation?: string }[]) {
      const path = hostPaths[mount.name];
      if (path === undefined || !samePath.has(mount.name)) continue;
      mount.mountPath = path;
      // Pod namespaces appear under the runtime's state directory after the agent started.
      if (mount.name === "nri") mount.mountPropagation = "HostToContainer";
    }
  }
  return objects;
}

const podListSchema = z.object({
  items: z.array(z.object({
    metadata: z.object({ name: z.string() }),
    status: z.object({ conditions: z.array(z.object({ type: z.string(), status: z.string() })).optional() }),
  })),
});

async function agentPods(): Promise<{ name: string; ready: boolean }[]> {
  const { items } = await kubectlJson(["get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=netclaim-agent"], podListSchema);
  return items.map((p) => ({ name: p.metadata.name, ready: p.status.conditions?.find((c) => c.type === "Ready")?.status === "True" }));
}

async function agentReady(ready: boolean): Promise<boolean> {
  const pods = await agentPods();
  return pods.length === 1 && pods[0]?.ready === ready;
}

/** A device as the host has it: name, MTU, MAC and addresses. */
async function hostDevice(name: string): Promise<unknown> {
  const { stdout } = await runCommand("ip", ["-json", "addr", "show", "dev", name]);
  return (JSON.parse(stdout) as { ifname: string; mtu: number; address?: string; addr_info?: { local: string; prefixlen: number }[] }[]).map((l) => ({
    name: l.ifname, mtu: l.mtu, mac: l.address, addresses: (l.addr_info ?? []).map((a) => `${a.local}/${String(a.prefixlen)}`).sort(),
  }));
}

describe("the agent installed from its image with the shipped manifests", { timeout: 600_000 }, () => {
  const cleanup = new Cleanup();
  const deviceClass = uniqueName("e2e-inst");
  const template = uniqueName("e2e-inst");
  const podName = uniqueName("e2e-inst");
  const nics = [`${NIC_PREFIX}a`, `${NIC_PREFIX}b`];
  let env: NodeEnv;
  let objects: Json[] = [];
  let hostBefore: unknown;
  const agentDirsBefore = AGENT_HOST_DIRS.filter((dir) => existsSync(dir));

  before(async () => {
    env = await node();
    const archive = join(repo, "build/image/netclaim.tar");
    assert.ok(existsSync(archive), "make image builds build/image/netclaim.tar (the e2e suite's prerequisite)");
    const ctr = join(env.crictl, "..", "ctr");
    const imported = await runCommand(ctr, ["--address", env.containerdSocket, "--namespace", "k8s.io", "images", "import", archive]);
    assert.equal(imported.code, 0, imported.stderr);
    const wire = await createNicPair(nics[0] ?? "", nics[1] ?? "");
    cleanup.defer(() => wire.remove());
    hostBefore = await hostDevice(nics[0] ?? "");
    objects = await installManifests(env);
    cleanup.defer(async () => {
      await deleteObjects("daemonset", [DAEMONSET], NAMESPACE);
      await deleteObjects("configmap", ["netclaim-agent-config"], NAMESPACE);
      for (const dir of AGENT_HOST_DIRS) if (!agentDirsBefore.includes(dir)) await rm(dir, { recursive: true, force: true });
    });
    await apply(...(objects as Manifest[]));
    await eventually("the agent's pod Ready (registered, connected to NRI, slices published)", () => agentReady(true), 180_000);
    await apply(deviceClassFor(deviceClass, NIC_PREFIX), claimTemplateFor(template, deviceClass, { interface: { name: "dra0", mtu: 1400 } }));
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    cleanup.defer(() => deleteObjects("resourceclaimtemplates.resource.k8s.io", [template]));
    cleanup.defer(() => deletePods([podName]));
    await waitForPublished(NIC_PREFIX, nics.length);
  });
  after(() => cleanup.run());

  it("runs as the DaemonSet's pod with its own ServiceAccount and gives a pod its interface", async () => {
    const [agentPod] = await agentPods();
    const serviceAccount = (await kubectl(["get", "pod", "-n", NAMESPACE, agentPod?.name ?? "", "-o", "jsonpath={.spec.serviceAccountName}"])).trim();
    assert.equal(serviceAccount, "netclaim-agent");
    // The slices were written by the agent's own identity, which the admission policy confines to this node.
    const managers = await kubectl(["get", "resourceslices", "--field-selector", `spec.nodeName=${env.nodeName},spec.driver=netclaim.dev`, "-o", "jsonpath={range .items[*]}{.metadata.managedFields[*].manager}{\"\\n\"}{end}"]);
    assert.ok(managers.trim().length > 0, "the agent published this node's slices");
    const before = (await agentEndpoint("/metrics")).body;
    await apply(busyboxPod({ name: podName, ...claimFields(template) }));
    await waitForPodsReady([podName]);
    const dra0 = (await netnsInterfaces((await podSandbox(podName)).netnsPath)).find((l) => l.name === "dra0");
    assert.equal(dra0?.mtu, 1400);
    const afterStart = (await agentEndpoint("/metrics")).body;
    const delta = (name: string, labels: string): number => counterValue(afterStart, name, labels) - counterValue(before, name, labels);
    assert.equal(delta("netclaim_dra_claim_operations_total", 'operation="prepare",status="success"'), 1, "one prepare for the pod");
    assert.equal(delta("netclaim_engine_operations_total", 'operation="attach",status="success"'), 1, "one attach for the pod");
  });

  it("puts the device back on the host as it was when the pod is deleted", async () => {
    await deletePods([podName]);
    await eventually(`${nics[0] ?? ""} back on the host`, async () => (await runCommand("ip", ["link", "show", "dev", nics[0] ?? ""])).code === 0, 60_000);
    assert.deepEqual(await hostDevice(nics[0] ?? ""), hostBefore);
  });

  it("answers its readiness probe with 503 while its runtime's NRI socket is gone, and 200 once it is back", async () => {
    // A containerd restart closes the NRI socket and makes a new one. The kubelet's probe (every
    // 10 s, three failures) marks the pod unready only when an outage outlasts that; the
    // endpoint the probe asks shows the state at once.
    const seen: string[] = [];
    const stopped = new AbortController();
    const watching = (async () => {
      while (!stopped.signal.aborted) {
        const { status, body } = await agentEndpoint("/readyz");
        seen.push(`${String(status)} ${body.trim()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    await restartNodeComponent("containerd");
    await eventually("the agent ready again", async () => (await agentEndpoint("/readyz")).status === 200, 60_000);
    stopped.abort();
    await watching;
    assert.ok(seen.some((answer) => answer.startsWith("503") && answer.includes("connected to NRI")), `/readyz answered ${JSON.stringify([...new Set(seen)])} around the containerd restart`);
    await eventually("the agent's pod Ready", () => agentReady(true), 60_000);
  });

  it("leaves no socket or mount of its own behind when uninstalled", async () => {
    await deleteObjects("daemonset", [DAEMONSET], NAMESPACE);
    await eventually("the agent's pod gone", async () => (await agentPods()).length === 0, 120_000);
    // A stopping agent removes its sockets and unmounts its IPAM namespace.
    const registry = await readdir(join(env.kubeletDir, "plugins_registry"));
    assert.deepEqual(registry.filter((name) => name.includes("netclaim")), [], "registration sockets removed");
    const mounts = (await runCommand("findmnt", ["-rno", "TARGET"])).stdout.split("\n");
    assert.deepEqual(mounts.filter((m) => m.startsWith("/run/netclaim")), [], "no mount of the agent's left");
  });
});
