/**
 * netclaim's entries in a pod's `k8s.v1.cni.cncf.io/network-status`
 * annotation, in Multus's format (the NetworkStatus type of
 * k8snetworkplumbingwg/network-attachment-definition-client: a JSON array of
 * {name, interface, ips, mac, mtu?, default?, dns, device-info?}), so tools
 * that read the annotation see every secondary interface of the pod.
 *
 * An entry's name is `<driver>/<claim namespace>/<claim name>/<request>`:
 * Multus names its entries after a NetworkAttachmentDefinition,
 * `<namespace>/<name>` (one slash), and the default network after its CNI
 * network name (no slash at all), so a name with three slashes or more can be
 * neither, and its first part, the DRA driver, says who wrote it. The rest
 * leads to the claim, as a NAD's name leads to the NAD; two devices of one
 * request share it, as two attachments of one NAD do, and `interface` tells
 * them apart.
 *
 * The merge is a pure function of the annotation as read: entries of others
 * stay exactly as they are, whatever fields they carry; ours replace only
 * our own entries on the same interfaces. An annotation that is not a list
 * of entries is not ours to repair, so it is left untouched.
 */
import { z } from "zod";
import { firstIssue } from "../common/zod-issue.ts";

export const NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";

/** One of netclaim's interfaces in a pod, as the attach left it. */
export interface AttachedInterface {
  claim: { namespace: string; name: string };
  /** The allocation's request (`req` or `req/sub`). */
  request: string;
  interfaceName: string;
  /** `address/prefix`, as the engine reports them. */
  addresses: readonly string[];
  mac?: string | undefined;
  /** Set only when the claim configured it (else the device kept its own). */
  mtu?: number | undefined;
}

/** An entry as Multus writes one; `dns` is always there in Multus's output, empty for a plain interface. */
export interface NetworkStatusEntry {
  name: string;
  interface: string;
  ips?: string[];
  mac?: string;
  mtu?: number;
  dns: Record<string, never>;
}

/** Others' entries are kept whole: only the fields the merge looks at are checked. */
const annotationSchema = z.array(z.looseObject({ name: z.string(), interface: z.string().optional() }));

export function networkStatusName(driverName: string, iface: Pick<AttachedInterface, "claim" | "request">): string {
  return `${driverName}/${iface.claim.namespace}/${iface.claim.name}/${iface.request}`;
}

export function networkStatusEntry(driverName: string, iface: AttachedInterface): NetworkStatusEntry {
  // Multus lists bare addresses, without the prefix length.
  const ips = iface.addresses.map((cidr) => cidr.split("/")[0] ?? cidr);
  return {
    name: networkStatusName(driverName, iface),
    interface: iface.interfaceName,
    ...(ips.length > 0 && { ips }),
    ...(iface.mac !== undefined && { mac: iface.mac }),
    ...(iface.mtu !== undefined && { mtu: iface.mtu }),
    dns: {},
  };
}

export type NetworkStatusMerge =
  | { kind: "changed"; annotation: string }
  | { kind: "unchanged" }
  | { kind: "malformed"; reason: string };

/**
 * The annotation with `ours` in it: `current` (absent when the pod has
 * none) less our entries on the interfaces `ours` names, then `ours`.
 * "unchanged" when that is what the pod has already, or `ours` is empty.
 */
export function mergeNetworkStatus(current: string | undefined, ours: readonly NetworkStatusEntry[], driverName: string): NetworkStatusMerge {
  // Nothing to add: not even Multus's layout is rewritten.
  if (ours.length === 0) return { kind: "unchanged" };
  let entries: z.infer<typeof annotationSchema> = [];
  if (current !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(current);
    } catch (err) {
      return { kind: "malformed", reason: `not JSON: ${(err as Error).message}` };
    }
    const checked = annotationSchema.safeParse(parsed);
    if (!checked.success) {
      return { kind: "malformed", reason: `not a list of network status entries: ${firstIssue(checked.error)}` };
    }
    entries = checked.data;
  }
  const replaced = new Set(ours.map((entry) => entry.interface));
  const kept = entries.filter((entry) => !(entry.name.startsWith(`${driverName}/`) && entry.interface !== undefined && replaced.has(entry.interface)));
  const annotation = format([...kept, ...ours]);
  return annotation === current ? { kind: "unchanged" } : { kind: "changed", annotation };
}

/**
 * Multus's layout (each entry indented by four, joined by commas in one
 * list), so an annotation that gains our entries reads as one writer's.
 */
function format(entries: readonly object[]): string {
  return `[${entries.map((entry) => JSON.stringify(entry, null, 4)).join(",")}]`;
}
