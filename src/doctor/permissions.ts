/**
 * Every API permission the agent uses, as data: what `netclaim doctor` asks
 * the API server about (SelfSubjectAccessReview), one entry per verb. The
 * shipped ClusterRoles (deploy/base/rbac.yaml, and
 * deploy/components/network-status/rbac.yaml for the opt-in) grant exactly
 * these: permissions.test.ts fails when the two drift apart, and
 * test/verify/rbac-usage.test.ts checks the ClusterRole against what the
 * agent really requested.
 */
export interface AgentPermission {
  /** API group; "" is the core group. */
  readonly group: string;
  readonly resource: string;
  readonly subresource?: string;
  readonly verb: string;
  /** The object's name, where RBAC grants the permission for one name only. */
  readonly name?: "driverName";
  /** Needed only with this AgentConfig switch on. */
  readonly when?: "networkStatus";
  /** What the agent cannot do without it. */
  readonly why: string;
}

const slices = (verb: string, why: string): AgentPermission => ({ group: "resource.k8s.io", resource: "resourceslices", verb, why });

export const AGENT_PERMISSIONS: readonly AgentPermission[] = [
  slices("list", "read its node's ResourceSlices: no device is published"),
  slices("watch", "watch its node's ResourceSlices: edited or deleted slices are not repaired"),
  slices("create", "publish ResourceSlices: no device is published"),
  slices("update", "update ResourceSlices: device changes are not published"),
  slices("delete", "delete ResourceSlices: a shrinking pool keeps stale slices"),
  { group: "", resource: "nodes", verb: "get", why: "read its Node for the slices' owner: no device is published" },
  { group: "resource.k8s.io", resource: "resourceclaims", verb: "get", why: "read a claim the kubelet asks to prepare: every prepare fails" },
  { group: "resource.k8s.io", resource: "resourceclaims", subresource: "status", verb: "patch", why: "write claim status (networkData, conditions): claims never show their interfaces" },
  {
    group: "resource.k8s.io",
    resource: "resourceclaims",
    subresource: "driver",
    verb: "associated-node:patch",
    name: "driverName",
    why: "write its driver's claim status entries on Kubernetes 1.36+ (DRAResourceClaimGranularStatusAuthorization): status writes are refused",
  },
  { group: "", resource: "events", verb: "create", why: "report attach results and warnings as Events on claims and pods" },
  { group: "k8s.cni.cncf.io", resource: "network-attachment-definitions", verb: "get", why: "read a NetworkAttachmentDefinition's IPAM (ipamFrom): such claims fail to prepare" },
  { group: "", resource: "pods", subresource: "status", verb: "get", why: "read the pod a claim is reserved for at prepare (its Multus networks' interface names) and, with networkStatus.enabled, its network-status annotation" },
  { group: "", resource: "pods", subresource: "status", verb: "patch", when: "networkStatus", why: "write a pod's network-status annotation (networkStatus.enabled)" },
];

/** "patch resourceclaims/status (resource.k8s.io)": how a permission is named in doctor's output. */
export function describePermission(p: AgentPermission): string {
  const resource = p.subresource === undefined ? p.resource : `${p.resource}/${p.subresource}`;
  return `${p.verb} ${resource} (${p.group === "" ? "core" : p.group})`;
}
