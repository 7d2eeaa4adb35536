/**
 * Where a link's kind comes from. The kernel names it in rtnetlink
 * (IFLA_INFO_KIND); sysfs shows it for some kinds only (a bridge's
 * `bridge/`, a tun's `tun_flags`, DEVTYPE in uevent, a tunnel's ARPHRD
 * type) and never for a veth or a dummy. So a scan of the node asks netlink,
 * and sysfs is the fallback only for trees netlink cannot describe (fixtures,
 * another root).
 */
import { isGuardedKind } from "./guard.ts";
import type { SysfsRoot } from "./sysfs.ts";
import type { BatchRunner } from "../netlink/index.ts";

/**
 * Every link of a network namespace by name, with its rtnl kind; the kind is
 * undefined for a link the kernel gives none (a physical NIC, a VF).
 */
export type LinkKinds = ReadonlyMap<string, string | undefined>;

/** Reads LinkKinds; a scan calls it once, after listing /sys/class/net. */
export type LinkKindSource = () => Promise<LinkKinds>;

/**
 * Link kinds from a netlink link dump. Netlink answers for the namespace the
 * runner's thread is in, which is the one /sys shows only when sysfs is read
 * at the real root: wire this for `root: "/"` only.
 */
export function netlinkLinkKinds(netlink: BatchRunner): LinkKindSource {
  return async () => {
    const [links] = await netlink.batch(undefined, [{ op: "listLinks" }] as const);
    return new Map(links.map((link) => [link.name, link.kind]));
  };
}

/** ARPHRD types (include/uapi/linux/if_arp.h) only IP tunnels have, by the kind that makes them. */
const TUNNEL_LINK_TYPES: Readonly<Record<number, string>> = { 768: "ipip", 769: "ip6tnl", 776: "sit", 778: "gre", 823: "ip6gre" };

/** What sysfs reveals of a link's kind; undefined when it shows nothing (a NIC, and also a veth or a dummy). */
export async function kindFromSysfs(
  sysfs: SysfsRoot,
  ifName: string,
  facts: { readonly entries: readonly string[]; readonly arphrd: number | undefined },
): Promise<string | undefined> {
  if (facts.entries.includes("bridge")) return "bridge";
  if (facts.entries.includes("bonding")) return "bond";
  if (facts.entries.includes("tun_flags")) return "tun";
  const tunnel = facts.arphrd === undefined ? undefined : TUNNEL_LINK_TYPES[facts.arphrd];
  if (tunnel !== undefined) return tunnel;
  // vxlan, geneve and wireguard set DEVTYPE to their kind; other DEVTYPEs (wlan, vlan) are not guarded kinds.
  const devtype = /^DEVTYPE=(.+)$/m.exec((await sysfs.text(`/sys/class/net/${ifName}/uevent`)) ?? "")?.[1];
  return devtype !== undefined && isGuardedKind(devtype) ? devtype : undefined;
}
