/**
 * Shared helpers for tests against the real control plane that
 * hack/cluster/cluster.sh runs (the mk prereq starts it; `up` is idempotent
 * and instant when it already runs).
 *
 * The control plane is shared by every suite, so a test file leaves it as it
 * found it: the fake Nodes it created (createFakeNode), with the pods bound to
 * them (agentToken's, and any a test placed there) and their ResourceSlices,
 * are deleted when the file's tests end, failed or not (cleanupAfterTests, a
 * root-level after hook of every test process that imports this module).
 *
 * Two releases (hack/cluster/versions.env): the api, dra and node suites run
 * on K8S_DEFAULT, and again as api-newest, dra-newest and node-newest with
 * K8S_VERSION=K8S_NEWEST (mk/api.mk), where cluster() is the newest release's
 * control plane. A test whose expectations differ by release branches on
 * this run's release (test/fixtures/k8s-versions.ts), so each run checks its
 * own.
 */
import { execFile, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { after } from "node:test";
import { promisify } from "node:util";
import { parse } from "yaml";
import { KubeApiError, KubeClient, isNotFound, kubeconfigCredentials, withToken, type Node, type ResourceSlice } from "../../src/kube/index.ts";
import { k8sVersions, minorOf } from "../fixtures/k8s-versions.ts";
import { writeSysfsFixture, type SysfsFixture } from "../fixtures/sysfs-tree.ts";
import { Inventory, devicePolicySchema, netlinkLinkKinds, type LinkEventSource } from "../../src/inventory/index.ts";
import { NetlinkClient } from "../../src/netlink/index.ts";
import { SlicePublisher, type SlicePlan } from "../../src/slices/index.ts";

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
 * A test control plane, started if it is not running, with the agent's RBAC,
 * admission policies and DeviceClasses applied exactly as shipped.
 *
 * Without an argument: this run's release (test/fixtures/k8s-versions.ts:
 * K8S_VERSION, by default hack/cluster/versions.env's K8S_DEFAULT), which is
 * what every test that does not compare releases uses, so that it runs on
 * each release of the matrix (the api and api-newest suites, mk/api.mk).
 * "default" or "newest": K8S_DEFAULT's or K8S_NEWEST's, whatever the run's
 * (test/verify reads both control planes' audit logs).
 */
export function cluster(release?: "default" | "newest"): Promise<Cluster> {
  const versions = k8sVersions();
  const version = release === undefined ? versions.current : versions[release];
  let started = clusters.get(version);
  if (started === undefined) {
    started = startCluster(version);
    clusters.set(version, started);
  }
  return started;
}

async function startCluster(version: string): Promise<Cluster> {
  const script = join(repo, "hack/cluster/cluster.sh");
  const env = { ...process.env, K8S_VERSION: version };
  const up = spawnSync(script, ["up"], { stdio: ["ignore", "inherit", "inherit"], env });
  if (up.status !== 0) throw new Error(`hack/cluster/cluster.sh up failed (Kubernetes ${version})`);
  const printed = await run(script, ["env"], { env });
  const vars = Object.fromEntries(printed.stdout.trim().split("\n").map((line) => line.split("=", 2) as [string, string]));
  const kubeconfig = vars.NETCLAIM_KUBECONFIG ?? "";
  const started: Cluster = {
    kubeconfig,
    kubectl: join(vars.NETCLAIM_KUBE_BIN ?? "", "kubectl"),
    admin: KubeClient.create(kubeconfigCredentials(kubeconfig)),
    version: vars.NETCLAIM_KUBE_VERSION ?? "",
    auditLog: vars.NETCLAIM_AUDIT_LOG ?? "",
  };
  // The DaemonSet is checked by the API server (a server-side dry run) but not
  // created: the agent under test runs as a process, and the DaemonSet's pods
  // would only sit Pending on every fake node (and pull an image on the e2e
  // node). Pods a DaemonSet left on a fake node go with it (deleteFakeNode).
  const manifests = await run(started.kubectl, ["kustomize", join(repo, "deploy/overlays/kubernetes")]);
  // kustomize writes one object per document: split the text as written.
  const documents = manifests.stdout.split(/^---$/m).filter((text) => parse(text) !== null);
  const isDaemonSet = (text: string): boolean => (parse(text) as { kind?: string }).kind === "DaemonSet";
  await kubectlApply(started, documents.filter((text) => !isDaemonSet(text)).join("---"));
  const daemonSets = documents.filter(isDaemonSet);
  if (daemonSets.length > 0) await kubectlApply(started, daemonSets.join("---"), ["--dry-run=server"]);
  const requiredPlugin = await run(started.kubectl, ["kustomize", join(repo, "deploy/required-plugin", requiredPluginVariant(started.version))]);
  await kubectlApply(started, requiredPlugin.stdout);
  await untilAdmissionPoliciesEnforced(started);
  return started;
}

/** deploy/required-plugin's variant for a release: the v1 API from 1.36, the beta one before (docs/install.md). */
export function requiredPluginVariant(version: string): "v1" | "v1beta1" {
  return minorOf(version) >= 36 ? "v1" : "v1beta1";
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
  const unbound = tokenClient(c, review.status.token);
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

export async function kubectlApply(c: Cluster, yaml: string, flags: string[] = []): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile(c.kubectl, ["--kubeconfig", c.kubeconfig, "apply", ...flags, "-f", "-"], (err) => {
      if (err) reject(new Error(`kubectl apply failed: ${err.message}`, { cause: err }));
      else resolve();
    });
    child.stdin?.end(yaml);
  });
}

/** Fake nodes this process created, per control plane, that are not deleted yet. */
const fakeNodes = new Map<Cluster, Set<string>>();
/** In-process agents (startAgent) not stopped yet: stopped before their nodes go, or they would publish again. */
const runningAgents = new Set<RunningAgent>();

/**
 * A Node object with capacity, so the scheduler can place pods on it; no
 * kubelet runs. What an earlier run left of it goes first; it is deleted
 * again when this process's tests end (cleanupAfterTests).
 */
export async function createFakeNode(c: Cluster, name: string): Promise<Node> {
  await deleteFakeNode(c, name);
  let names = fakeNodes.get(c);
  if (names === undefined) fakeNodes.set(c, (names = new Set()));
  names.add(name);
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

/**
 * Deletes a fake node and what tests left on it: the pods bound to it
 * (force-deleted: no kubelet finishes them), the Node, and its ResourceSlices,
 * whichever driver wrote them. Returns once the slices are gone, so that no
 * late delete of the garbage collector (the slices are owned by the Node)
 * races an agent that publishes for a new Node of the same name.
 */
export async function deleteFakeNode(c: Cluster, name: string): Promise<void> {
  const pods = await c.admin.request<{ items: { metadata: { namespace: string; name: string } }[] }>("GET", "/api/v1/pods", {
    query: { fieldSelector: `spec.nodeName=${name}` },
  });
  for (const pod of pods.items) await deleteIfExists(c, `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}?gracePeriodSeconds=0`);
  await deleteIfExists(c, `/api/v1/nodes/${name}`);
  for (const slice of await nodeSlices(c, name)) await deleteIfExists(c, `/apis/resource.k8s.io/v1/resourceslices/${slice.metadata.name ?? ""}`);
  await waitFor(`slices of node ${name} to be deleted`, async () => ((await nodeSlices(c, name)).length === 0 ? true : undefined), 60_000);
  fakeNodes.get(c)?.delete(name);
}

/**
 * Stops the in-process agents still running and deletes every fake node this
 * process created (deleteFakeNode). Runs as a root-level after hook of each
 * test file that imports this module; a script that creates fake nodes
 * outside node:test (a benchmark) calls it itself.
 */
export async function cleanupAfterTests(): Promise<void> {
  for (const agent of [...runningAgents]) await agent.stop().catch(() => undefined);
  const errors: unknown[] = [];
  for (const [c, names] of fakeNodes) {
    for (const name of [...names]) await deleteFakeNode(c, name).catch((err: unknown) => errors.push(err));
  }
  if (errors.length > 0) throw new AggregateError(errors, `could not delete ${errors.length} fake node(s) from the shared control plane`);
}

// Only under node:test (the runner's child processes, or a test file run
// directly): a benchmark that imports this module must not start a test run.
if (process.env["NODE_TEST_CONTEXT"] !== undefined || /\.test\.ts$/.test(process.argv[1] ?? "")) after(cleanupAfterTests);

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
export function tokenClient(c: Cluster, token: string): KubeClient {
  return KubeClient.create(withToken(kubeconfigCredentials(c.kubeconfig), token));
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
  /** Called after each reconcile that wrote something (writes at steady state are a bug). */
  onPublished?: (plan: SlicePlan) => void;
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
    ...(options.onPublished !== undefined && { onPublished: options.onPublished }),
  });
  await publisher.start();
  let stopped: Promise<void> | undefined;
  const agent: RunningAgent = {
    inventory,
    publisher,
    client: options.client,
    errors,
    // Once, whoever asks first: the test or cleanupAfterTests.
    stop() {
      stopped ??= (async () => {
        runningAgents.delete(agent);
        await publisher.stop();
        await inventory.stop();
        await netlink?.close();
      })();
      return stopped;
    },
  };
  runningAgents.add(agent);
  return agent;
}
