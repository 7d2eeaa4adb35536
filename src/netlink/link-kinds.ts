/**
 * Whether the kernel can make links of a kind, asked without making one: a
 * create naming no parent (ifindex 0) is refused after the kernel has
 * looked the kind up (loading its module if it can), with EOPNOTSUPP when
 * there is no such kind and ENODEV or EINVAL when there is.
 */
import { NetlinkError } from "./errors.ts";
import type { BatchRunner } from "./ops.ts";

const PROBE_NAME = "ncprobe0";

/** True or false as the kernel answers; the error when it answers something else (no CAP_NET_ADMIN, say). */
export async function linkKindAvailable(netlink: Pick<BatchRunner, "batchAcross">, kind: "macvlan" | "ipvlan"): Promise<boolean> {
  try {
    await netlink.batchAcross([{ netns: undefined, op: { op: "createLink", spec: { kind, name: PROBE_NAME, parentIndex: 0 } } }]);
  } catch (err) {
    const errno = err instanceof NetlinkError ? err.errnoName : undefined;
    if (errno === "ENODEV" || errno === "EINVAL") return true;
    if (errno === "EOPNOTSUPP") return false;
    throw err;
  }
  // Never expected (ifindex 0 is no device), but a link made must not stay.
  const [link] = (await netlink.batchAcross([{ netns: undefined, op: { op: "getLink", key: { name: PROBE_NAME } } }])) as ({ index: number } | null)[];
  if (link != null) await netlink.batchAcross([{ netns: undefined, op: { op: "deleteLink", index: link.index, device: PROBE_NAME } }]);
  return true;
}
