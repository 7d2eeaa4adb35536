/**
 * Devices handed to Multus (mode multus) are already in the pod when the runtime calls
 * RunPodSandbox: Multus's CNI ADD moved them there, under the name Multus chose (net1, ...)
 * and with the NetworkAttachmentDefinition's addresses. Finding each one in the pod's network
 * namespace lets the claim's status report it (networkData) as it does a device netclaim
 * attached itself.
 */
import type { DevicePlan } from "../claims/plan.ts";
import { RT_SCOPE, type Address, type Link } from "../netlink/index.ts";

export interface DelegatedInterface {
  name: string;
  /** Global-scope addresses as `address/prefix`. */
  addresses: string[];
  hardwareAddress?: string;
}

/**
 * The pod's link that is the device: the one on its PCI address, or, for a device without
 * one, the one with its host ifindex (a move into a namespace keeps the ifindex unless the
 * namespace already uses it; then the device is not recognised). Undefined when none is.
 */
export function findDelegatedInterface(
  identity: DevicePlan["identity"],
  links: readonly Link[],
  addresses: readonly Address[],
): DelegatedInterface | undefined {
  const link = links.find((l) => (identity.pciAddress !== undefined ? l.parentDevice === identity.pciAddress : l.index === identity.ifindex));
  if (link === undefined) return undefined;
  return {
    name: link.name,
    addresses: addresses
      .filter((a) => a.index === link.index && a.scope === RT_SCOPE.UNIVERSE)
      .map((a) => `${a.address}/${String(a.prefixLength)}`),
    ...(link.mac !== undefined ? { hardwareAddress: link.mac } : {}),
  };
}
