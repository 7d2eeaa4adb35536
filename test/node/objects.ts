/** API objects the node-simulator tests create, and waiting for the scheduler. */
import { waitFor } from "../api/harness.ts";
import type { ResourceClaim } from "../../src/kube/index.ts";
import { DRIVER, type SimNode } from "./harness.ts";

/** Marks the pods a simulated node's tests create, so a later run can remove them even if never scheduled. */
export const SIM_NODE_LABEL = "netclaim.dev/sim-node";

/** Every netclaim device; pods pick the node with a nodeSelector. */
export function deviceClass(): string {
  return `
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: { name: netclaim-sim }
spec:
  selectors:
    - cel: { expression: 'device.driver == "${DRIVER}"' }
`;
}

/** One request of a claim template: any netclaim device unless `cel` narrows it, configured by `config` (a NetworkConfig body). */
export interface RequestSpec {
  name: string;
  cel?: string;
  config?: object;
}

/** A template with one request per name; `config` (a NetworkConfig body) applies to the first. */
export function claimTemplate(namespace: string, name: string, config: object | undefined, requests = ["data", "spare"]): string {
  return requestsTemplate(
    namespace,
    name,
    requests.map((request, i) => (i === 0 && config !== undefined ? { name: request, config } : { name: request })),
  );
}

export function requestsTemplate(namespace: string, name: string, requests: readonly RequestSpec[]): string {
  const selectors = (r: RequestSpec): string => (r.cel === undefined ? "" : `, selectors: [{ cel: { expression: ${JSON.stringify(r.cel)} } }]`);
  const configs = requests.flatMap((r) =>
    r.config === undefined
      ? []
      : [
          `
        - requests: [${r.name}]
          opaque:
            driver: ${DRIVER}
            parameters: ${JSON.stringify({ apiVersion: "netclaim.dev/v1alpha1", kind: "NetworkConfig", ...r.config })}`,
        ],
  );
  return `
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  spec:
    devices:
      requests:
${requests.map((r) => `        - name: ${r.name}\n          exactly: { deviceClassName: netclaim-sim${selectors(r)} }`).join("\n")}${configs.length === 0 ? "" : `\n      config:${configs.join("")}`}
`;
}

/** The Multus network a simulated pod asks for; its sandbox's net1 stands in for it. */
export const SIM_MULTUS_NETWORK = "sim-macvlan";

export function pod(namespace: string, nodeName: string, name: string, template: string): string {
  return `
apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: ${namespace}
  labels: { ${SIM_NODE_LABEL}: ${nodeName} }
  # The network of the "Multus" net1 that preparedPod's sandbox holds.
  annotations: { k8s.v1.cni.cncf.io/networks: ${SIM_MULTUS_NETWORK} }
spec:
  nodeSelector: { kubernetes.io/hostname: ${nodeName} }
  tolerations: [{ operator: Exists }]
  resourceClaims: [{ name: nics, resourceClaimTemplateName: ${template} }]
  containers:
    - name: app
      image: netclaim.invalid/app:test
      resources: { claims: [{ name: nics }] }
`;
}

export interface PodObject {
  metadata: { uid: string; annotations?: Record<string, string> };
  spec: { nodeName?: string };
  status?: { resourceClaimStatuses?: { name: string; resourceClaimName?: string }[] };
}

/** Waits until the scheduler bound the pod and its generated claim is allocated and reserved for it. */
export async function scheduledClaim(node: SimNode, namespace: string, nodeName: string, podName: string): Promise<{ pod: PodObject; claim: ResourceClaim }> {
  const podObject = await waitFor(`${podName} scheduled with its claim`, async () => {
    const p = await node.c.admin.request<PodObject>("GET", `/api/v1/namespaces/${namespace}/pods/${podName}`);
    return p.spec.nodeName === nodeName && p.status?.resourceClaimStatuses?.[0]?.resourceClaimName !== undefined ? p : undefined;
  }, 60_000);
  const claimName = podObject.status?.resourceClaimStatuses?.[0]?.resourceClaimName ?? "";
  const claim = await waitFor(`claim ${claimName} allocated and reserved`, async () => {
    const c = await node.c.admin.request<ResourceClaim>("GET", `/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaims/${claimName}`);
    return c.status?.allocation != null && (c.status.reservedFor?.length ?? 0) > 0 ? c : undefined;
  });
  return { pod: podObject, claim };
}

export interface PreparedPodOptions {
  namespace: string;
  nodeName: string;
  podName: string;
  template: string;
  /** The "Multus" network's master and the address net1 gets in the pod's namespace. */
  master: string;
  net1Address: string;
  /**
   * The pod gets its Multus annotation only after its claim was prepared (the kubelet gives the
   * runtime the annotations the pod has when its sandbox starts), so only the attach can tell
   * whose net1 it is.
   */
  annotateAfterPrepare?: boolean;
}

/**
 * A pod with one claim from `template`: created, scheduled, its claim
 * prepared through the kubelet peer, and a sandbox for it (a namespace
 * holding a "Multus" net1) that the runtime peer can start.
 */
export async function preparedPod(node: SimNode, options: PreparedPodOptions) {
  const { namespace, nodeName, podName } = options;
  await node.deletePod(namespace, podName);
  const manifest = pod(namespace, nodeName, podName, options.template);
  await node.apply(options.annotateAfterPrepare === true ? manifest.replace(/^ {2}annotations: .*\n/m, "") : manifest);
  const { pod: podObject, claim } = await scheduledClaim(node, namespace, nodeName, podName);
  const ref = { namespace, name: claim.metadata.name, uid: claim.metadata.uid };
  const prepared = await node.kubelet.prepare(DRIVER, [ref]);
  if ((prepared.response.claims?.[claim.metadata.uid]?.error ?? "") !== "") {
    throw new Error(`prepare of ${claim.metadata.name} failed: ${prepared.response.claims?.[claim.metadata.uid]?.error ?? ""}`);
  }
  if (options.annotateAfterPrepare === true) {
    const annotations = { "k8s.v1.cni.cncf.io/networks": SIM_MULTUS_NETWORK };
    await node.c.admin.request("PATCH", `/api/v1/namespaces/${namespace}/pods/${podName}`, { body: { metadata: { annotations } }, contentType: "application/merge-patch+json" });
    podObject.metadata.annotations = annotations;
  }
  const netns = await node.podNetns(options.master, options.net1Address);
  // The runtime hands NRI the pod's annotations, as the kubelet gave them in the sandbox config.
  const sandbox = { id: `sb-${podName}`, uid: podObject.metadata.uid, name: podName, namespace, netns: `/var/run/netns/${netns}`, annotations: podObject.metadata.annotations ?? {} };
  return { podUID: podObject.metadata.uid, claimName: claim.metadata.name, ref, netns, sandbox };
}
