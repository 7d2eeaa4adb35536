/**
 * Default-route uplinks from /proc/net/route and /proc/net/ipv6_route: the
 * interfaces that carry the node's own traffic. Publishing one would let a
 * pod take the node off the network, so they are never eligible.
 *
 * Only usable (RTF_UP) main-table routes show up in these files; reject and
 * blackhole routes (RTF_REJECT, such as the kernel's ::/0 on lo) are skipped.
 */
import type { SysfsRoot } from "./sysfs.ts";

const RTF_UP = 0x1;
const RTF_REJECT = 0x200;

export async function defaultRouteInterfaces(sysfs: SysfsRoot): Promise<Set<string>> {
  const [v4, v6] = await Promise.all([sysfs.text("/proc/net/route"), sysfs.text("/proc/net/ipv6_route")]);
  const uplinks = new Set<string>();
  for (const name of [...parseIpv4Defaults(v4 ?? ""), ...parseIpv6Defaults(v6 ?? "")]) uplinks.add(name);
  return uplinks;
}

/** Iface Destination Gateway Flags RefCnt Use Metric Mask ...; hex fields. */
export function parseIpv4Defaults(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n").slice(1)) {
    const [iface, destination, , flags, , , , mask] = line.trim().split(/\s+/);
    if (iface === undefined || mask === undefined || flags === undefined) continue;
    if (destination !== "00000000" || mask !== "00000000") continue;
    if (usable(Number.parseInt(flags, 16))) out.push(iface);
  }
  return out;
}

/** dest plen src splen nexthop metric refcnt use flags iface; hex fields. */
export function parseIpv6Defaults(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const [destination, prefixLength, , , , , , , flags, iface] = fields;
    if (iface === undefined || flags === undefined || iface === "lo") continue;
    if (!/^0+$/.test(destination ?? "") || prefixLength !== "00") continue;
    if (usable(Number.parseInt(flags, 16))) out.push(iface);
  }
  return out;
}

function usable(flags: number): boolean {
  return (flags & RTF_UP) !== 0 && (flags & RTF_REJECT) === 0;
}
