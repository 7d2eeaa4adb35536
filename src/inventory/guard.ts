/**
 * The kind guard: devices that are the node's own plumbing rather than NICs
 * a workload should take. A pod that took a container's veth, a bridge, an
 * overlay tunnel or a CNI's host interface would cut other pods or the node
 * off the network, so the policy publishes a guarded device only when an
 * include rule opts into every guarded kind it has (`kinds`) or names it
 * exactly; a glob such as `ifName: "*"` is not an opt-in.
 *
 * Kinds are the kernel's rtnl link kinds (IFLA_INFO_KIND, what `ip -d link`
 * prints), plus two roles (a member of a bond, a port of a bridge) and
 * `cni`, the host interfaces CNI plugins and runtimes make, known by name.
 */
import { z } from "zod";
import type { NetDevice } from "./device.ts";
import { globMatches } from "./glob.ts";

export const GUARDED_KINDS = [
  // The host end of a container's link.
  "veth", "netkit",
  // Switching, aggregation and routing the host runs.
  "bridge", "openvswitch", "bond", "team", "vrf",
  // Members of those: taking one breaks the bond or bridge.
  "bond-member", "bridge-port",
  // Tunnels: overlays, IP-in-IP, GRE, IPsec and VPN endpoints.
  "vxlan", "geneve", "bareudp", "ipip", "sit", "ip6tnl", "gre", "gretap", "ip6gre", "ip6gretap", "erspan", "ip6erspan",
  "vti", "vti6", "xfrm", "wireguard",
  // Software endpoints with no wire behind them (kube-ipvs0 is a dummy; the CNI bandwidth plugin makes ifbs).
  "dummy", "ifb", "tun",
  // Host interfaces of CNI plugins and runtimes, by name (CNI_HOST_INTERFACES).
  "cni",
] as const;

export type GuardedKind = (typeof GUARDED_KINDS)[number];

const guardedKindSet: ReadonlySet<string> = new Set(GUARDED_KINDS);

export function isGuardedKind(kind: string): kind is GuardedKind {
  return guardedKindSet.has(kind);
}

export const guardedKindSchema = z.enum(GUARDED_KINDS, {
  error: (issue) => `unknown kind ${JSON.stringify(issue.input)}; valid kinds: ${GUARDED_KINDS.join(", ")}`,
});

/** The guard a device gets from its master's kind. */
const MEMBER_ROLES: Readonly<Record<string, GuardedKind>> = {
  bond: "bond-member",
  team: "bond-member",
  bridge: "bridge-port",
  openvswitch: "bridge-port",
};

/**
 * Host interfaces that CNI plugins, kube-proxy and container runtimes
 * create, by the names they give them. Most are also guarded by their
 * kernel kind (a Calico `cali*` is a veth); the name still counts when the
 * kind is unknown (a scan without netlink) and keeps a CNI's veth apart from
 * a stand-in NIC that happens to be a veth.
 */
export const CNI_HOST_INTERFACES: readonly string[] = [
  // Calico (iptables, eBPF and WireGuard dataplanes)
  "cali*", "tunl0", "vxlan.calico", "vxlan-v6.calico", "wireguard.cali", "wg-v6.cali", "bpfin.cali", "bpfout.cali",
  // Cilium
  "lxc*", "cilium_*",
  // OVN-Kubernetes and Open vSwitch
  "ovn-k8s-mp*", "br-int", "br-ex", "genev_sys_*", "vxlan_sys_*", "ovs-system",
  // Antrea
  "antrea-*",
  // flannel, the bridge plugin, Docker, Podman
  "flannel.*", "flannel-wg*", "cni0", "docker0", "cni-podman*", "podman*",
  // kube-proxy in IPVS mode, NodeLocal DNSCache, kube-router, Weave Net
  "kube-ipvs0", "nodelocaldns", "kube-bridge", "kube-dummy-if", "weave", "vethwe-*",
];

/**
 * The guarded kinds of one device, in a stable order: its own kind, its
 * role under its master, its name. Empty for a device the guard lets
 * through (a NIC, a VF, a macvlan, a VLAN).
 */
export function guardedKinds(device: NetDevice, byName: ReadonlyMap<string, NetDevice>): GuardedKind[] {
  const kinds: GuardedKind[] = [];
  if (device.kind !== undefined && isGuardedKind(device.kind)) kinds.push(device.kind);
  const masterKind = device.master === undefined ? undefined : byName.get(device.master)?.kind;
  const role = masterKind === undefined ? undefined : MEMBER_ROLES[masterKind];
  if (role !== undefined) kinds.push(role);
  if (CNI_HOST_INTERFACES.some((pattern) => globMatches(pattern, device.ifName))) kinds.push("cni");
  return kinds;
}
