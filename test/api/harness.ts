/**
 * Shared helpers for tests against the real control plane that
 * hack/cluster/cluster.sh runs (the mk prereq starts it; `up` is idempotent
 * and instant when it already runs).
 */
import { execFile, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeApiError, KubeClient, isNotFound, type Node, type ResourceSlice } from "../../src/kube/index.ts";
import { writeSysfsFixture, type SysfsFixture } from "../fixtures/sysfs-tree.ts";
import { Inventory, devicePolicySchema, netlinkLinkKinds, type LinkEventSource } from "../../src/inventory/index.ts";
import { NetlinkClient } from "../../src/netlink/index.ts";
import { SlicePublisher } from "../../src/slices/index.ts";

const run = promisify(execFile);
const repo = new URL("../../", import.meta.url).pathname;

export interface Cluster {
  kubeconfig: string;
  kubectl: string;
  admin: KubeClient;
  /** The Kubernetes release it runs, e.g. v1.34.4. */
  version: string;
  /** JSON lines: every request of the agent's ServiceAccount (hack/cluster/cluster.sh). */
  auditLog: string;
}

const clusters = new Map<string, Promise<Cluster>>();

/**
 * The test control plane of `version` (default: hack/cluster/versions.env's
 * K8S_DEFAULT; "newest" for K8S_NEWEST), started if it is not running, with
 * the agent's RBAC, admission policies and DeviceClasses applied exactly as shipped.
 */
export function cluster(version: "default" | "newest" = "default"): Promise<Cluster> {
  let started = clusters.get(version);
  if (started === undefined) {
    started = startCluster(version);
    clusters.set(version, started);
  }
  return started;
}

async function startCluster(version: "default" | "newest"): Promise<Cluster> {
  const script = join(repo, "hack/cluster/cluster.sh");
  const env = version === "default" ? process.env : { ...process.env, K8S_VERSION: await newestVersion() };
  const up = spawnSync(script, ["up"], { stdio: ["ignore", "inherit", "inherit"], env });
  if (up.status !== 0) throw new Error(`hack/cluster/cluster.sh up failed (Kubernetes ${version})`);
  const printed = await run(script, ["env"], { env });
  const vars = Object.fromEntries(printed.stdout.trim().split("\n").map((line) => line.split("=", 2) as [string, string]));
  const kubeconfig = vars.NETCLAIM_KUBECONFIG ?? "";
  const config = new KubeConfig();
  config.loadFromFile(kubeconfig);
  const started: Cluster = {
    kubeconfig,
    kubectl: join(vars.NETCLAIM_KUBE_BIN ?? "", "kubectl"),
    admin: await KubeClient.create(config),
    version: vars.NETCLAIM_KUBE_VERSION ?? "",
    auditLog: vars.NETCLAIM_AUDIT_LOG ?? "",
  };
  const manifests = await run(started.kubectl, ["kustomize", join(repo, "deploy/overlays/kubernetes")]);
  await kubectlApply(started, manifests.stdout);
  const requiredPlugin = await run(started.kubectl, ["kustomize", join(repo, "deploy/required-plugin", requiredPluginVariant(started.version))]);
  await kubectlApply(started, requiredPlugin.stdout);
  await untilAdmissionPoliciesEnforced(started);
  return started;
}

/** deploy/required-plugin's variant for a release: the v1 API from 1.36, the beta one before (docs/install.md). */
export function requiredPluginVariant(version: string): "v1" | "v1beta1" {
  const minor = Number(/^v1\.(\d+)\./.exec(version)?.[1]);
  if (Number.isNaN(minor)) throw new Error(`not a Kubernetes release: ${version}`);
  return minor >= 36 ? "v1" : "v1beta1";
}

/** A pod as the API server would store it after admission, from a dry run. */
export async function admittedPod(c: Cluster, namespace: string, pod: object): Promise<{ metadata: { annotations?: Record<string, string> } }> {
  return c.admin.request("POST", `/api/v1/namespaces/${namespace}/pods`, { query: { dryRun: "All" }, body: pod });
}

/**
 * The API server loads admission policies through an informer, some time
 * after they are written: a test that expects a refusal straight after
 * `kubectl apply` on a fresh control plane would see the write succeed. Waits
 * until both shipped validating policies refuse a dry-run write of the
 * agent's ServiceAccount with a token that names no node, which each refuses
 * before anything else, and the required-plugin policy marks a dry-run pod
 * with a claim. (test/verify leaves dry runs out of its evidence.)
 */
async function untilAdmissionPoliciesEnforced(c: Cluster): Promise<void> {
  const review = await c.admin.request<{ status: { token: string } }>("POST", "/api/v1/namespaces/netclaim/serviceaccounts/netclaim-agent/token", {
    body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 600 } },
  });
  const unbound = await tokenClient(c, review.status.token);
  const probeClaim = "admission-policy-probe";
  const claimPath = `/apis/resource.k8s.io/v1/namespaces/netclaim/resourceclaims/${probeClaim}`;
  await deleteIfExists(c, claimPath);
  await c.admin.request("POST", "/apis/resource.k8s.io/v1/namespaces/netclaim/resourceclaims", {
    body: { apiVersion: "resource.k8s.io/v1", kind: "ResourceClaim", metadata: { name: probeClaim }, spec: { devices: { requests: [{ name: "nic", exactly: { deviceClassName: "netclaim-netdev" } }] } } },
  });
  const refusedForNoNode = (write: Promise<unknown>): Promise<true | undefined> =>
    write.then(
      () => undefined,
      (err: unknown) => (err instanceof KubeApiError && err.status === 403 && err.message.includes("token names no node") ? true : undefined),
    );
  try {
    await waitFor("the ResourceSlice admission policy to be enforced", () =>
      refusedForNoNode(
        unbound.request("POST", "/apis/resource.k8s.io/v1/resourceslices", {
          query: { dryRun: "All" },
          body: { apiVersion: "resource.k8s.io/v1", kind: "ResourceSlice", metadata: { name: "admission-policy-probe" }, spec: { driver: "netclaim.dev", nodeName: "admission-policy-probe", pool: { name: "admission-policy-probe", generation: 0, resourceSliceCount: 1 }, devices: [] } },
        }),
      ), 60_000);
    await waitFor("the claim status admission policy to be enforced", () =>
      refusedForNoNode(
        unbound.request("PATCH", `${claimPath}/status`, { query: { dryRun: "All" }, body: { status: { devices: [] } }, contentType: "application/merge-patch+json" }),
      ), 60_000);
    await waitFor("the required-plugin admission policy to mark pods", async () => {
      const pod = await admittedPod(c, "netclaim", {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "admission-policy-probe" },
        spec: { resourceClaims: [{ name: "nic", resourceClaimName: probeClaim }], containers: [{ name: "c", image: "netclaim.invalid/probe:test" }] },
      });
      return pod.metadata.annotations?.["required-plugins.noderesource.dev/pod"] === undefined ? undefined : true;
    }, 60_000);
  } finally {
    unbound.close();
    await deleteIfExists(c, claimPath);
  }
}

async function newestVersion(): Promise<string> {
  const versions = await run("bash", ["-c", `source ${join(repo, "hack/cluster/versions.env")} && echo "$K8S_NEWEST"`]);
  return versions.stdout.trim();
}

export async function kubectlApply(c: Cluster, yaml: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile(c.kubectl, ["--kubeconfig", c.kubeconfig, "apply", "-f", "-"], (err) => {
      if (err) reject(new Error(`kubectl apply failed: ${err.message}`, { cause: err }));
      else resolve();
    });
    child.stdin?.end(yaml);
  });
}

/** A Node object with capacity, so the scheduler can place pods on it; no kubelet runs. */
export async function createFakeNode(c: Cluster, name: string): Promise<Node> {
  await deleteIfExists(c, `/api/v1/nodes/${name}`);
  // Slices of an earlier run are owned by the old Node; let the garbage collector finish with
  // them, or its late deletes would race the agent under test.
  await waitFor(`slices of the old node ${name} to be collected`, async () =>
    (await nodeSlices(c, name)).length === 0 ? true : undefined, 60_000);
  const node = await c.admin.request<Node>("POST", "/api/v1/nodes", {
    body: { apiVersion: "v1", kind: "Node", metadata: { name, labels: { "kubernetes.io/hostname": name, "netclaim.dev/test": "api" } } },
  });
  await c.admin.request("PATCH", `/api/v1/nodes/${name}/status`, {
    contentType: "application/merge-patch+json",
    body: {
      status: {
        capacity: { cpu: "8", memory: "16Gi", pods: "110" },
        allocatable: { cpu: "8", memory: "16Gi", pods: "110" },
        conditions: [{ type: "Ready", status: "True", reason: "FakeNode", message: "no kubelet; test node", lastHeartbeatTime: new Date().toISOString(), lastTransitionTime: new Date().toISOString() }],
      },
    },
  });
  return node;
}

export async function deleteIfExists(c: Cluster, path: string): Promise<void> {
  try {
    await c.admin.request("DELETE", path);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/**
 * A client with the agent's own credentials: a ServiceAccount token bound to
 * a Pod on `nodeName`, as the kubelet would mount it, so the API server adds
 * the node name the admission policy checks. The Pod never runs.
 */
export async function agentClient(c: Cluster, nodeName: string): Promise<KubeClient> {
  return tokenClient(c, await agentToken(c, nodeName));
}

/** The token behind agentClient. */
export async function agentToken(c: Cluster, nodeName: string): Promise<string> {
  // A fresh pod each time: a pod on a node without a kubelet never finishes terminating.
  const podName = `agent-${nodeName}-${randomUUID().slice(0, 8)}`;
  const pod = await c.admin.request<{ metadata: { uid: string } }>("POST", "/api/v1/namespaces/netclaim/pods", {
    body: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: podName },
      spec: {
        nodeName,
        serviceAccountName: "netclaim-agent",
        automountServiceAccountToken: false,
        tolerations: [{ operator: "Exists" }],
        containers: [{ name: "agent", image: "netclaim.invalid/agent:test" }],
      },
    },
  });
  const review = await c.admin.request<{ status: { token: string } }>(
    "POST",
    "/api/v1/namespaces/netclaim/serviceaccounts/netclaim-agent/token",
    {
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 3600, boundObjectRef: { apiVersion: "v1", kind: "Pod", name: podName, uid: pod.metadata.uid } },
      },
    },
  );
  return review.status.token;
}

/** A client for the test cluster that authenticates with `token`. */
export async function tokenClient(c: Cluster, token: string): Promise<KubeClient> {
  const admin = new KubeConfig();
  admin.loadFromFile(c.kubeconfig);
  const cluster = admin.getCurrentCluster();
  if (cluster === null) throw new Error("admin kubeconfig has no cluster");
  const config = new KubeConfig();
  config.loadFromClusterAndUser(cluster, { name: "netclaim-agent", token });
  return KubeClient.create(config);
}

/** Materialises a sysfs fixture in a fresh temporary directory. */
export async function fixtureRoot(fixture: SysfsFixture): Promise<{ root: string; [Symbol.asyncDispose](): Promise<void> }> {
  const root = await mkdtemp("/tmp/nc-api-");
  await writeSysfsFixture(root, fixture);
  return { root, [Symbol.asyncDispose]: () => rm(root, { recursive: true, force: true }) };
}

export async function nodeSlices(c: Cluster, nodeName: string): Promise<ResourceSlice[]> {
  const list = await c.admin.request<{ items: ResourceSlice[] }>("GET", "/apis/resource.k8s.io/v1/resourceslices", {
    query: { fieldSelector: `spec.nodeName=${nodeName}` },
  });
  return list.items.sort((a, b) => (a.metadata.name ?? "").localeCompare(b.metadata.name ?? ""));
}

/** Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`, { cause: lastError });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface RunningAgent {
  inventory: Inventory;
  publisher: SlicePublisher;
  client: KubeClient;
  errors: unknown[];
  stop(): Promise<void>;
}

/** The inventory and slice publisher as the agent wires them, on a fixture or the real root. */
export async function startAgent(options: {
  client: KubeClient;
  nodeName: string;
  root: string;
  policy?: unknown;
  linkEvents?: LinkEventSource;
}): Promise<RunningAgent> {
  const errors: unknown[] = [];
  // Like the agent, the real root gets the kernel's link kinds (a veth is guarded).
  const netlink = options.root === "/" ? new NetlinkClient() : undefined;
  const inventory = new Inventory({
    root: options.root,
    policy: devicePolicySchema.parse(options.policy),
    ...(netlink !== undefined ? { linkKinds: netlinkLinkKinds(netlink) } : {}),
    debounceMs: 20,
    ...(options.linkEvents !== undefined ? { linkEvents: options.linkEvents } : {}),
    onError: (err) => errors.push(err),
  });
  await inventory.start();
  const publisher = new SlicePublisher({
    client: options.client,
    driverName: "netclaim.dev",
    nodeName: options.nodeName,
    devices: inventory,
    onError: (err) => errors.push(err),
  });
  await publisher.start();
  return {
    inventory,
    publisher,
    client: options.client,
    errors,
    async stop() {
      await publisher.stop();
      await inventory.stop();
      await netlink?.close();
    },
  };
}
