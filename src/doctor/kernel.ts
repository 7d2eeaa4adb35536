/**
 * Kernel features the agent relies on, asked of the kernel itself over
 * netlink, as the agent asks: network namespaces; the macvlan and ipvlan
 * link kinds (Multus networks beside netclaim's interfaces use them; the
 * agent's own moves do not); and the RDMA subsystem's namespace mode, which
 * decides whether an RDMA device follows its netdev into a pod.
 *
 * A link kind is probed by asking for a link of that kind on ifindex 0,
 * which does not exist: a kernel that knows the kind (loading its module
 * on demand) answers ENODEV, one that does not EOPNOTSUPP. Nothing is ever
 * created.
 */
import { access } from "node:fs/promises";
import { errorMessage } from "../common/errors.ts";
import { linkKindAvailable, NetlinkError, type BatchRunner } from "../netlink/index.ts";
import { fail, pass, warn, type Check, type CheckResult } from "./check.ts";

export const NETNS_CHECK = "network namespaces";
export const MACVLAN_CHECK = "macvlan";
export const IPVLAN_CHECK = "ipvlan";
export const RDMA_CHECK = "RDMA netns mode";

export interface KernelCheckOptions {
  readonly netlink: Pick<BatchRunner, "batchAcross">;
  /** Default /proc. */
  readonly procRoot?: string;
}

/** The probe link's name; never created. */
export function kernelChecks(options: KernelCheckOptions): Check[] {
  return [
    { name: NETNS_CHECK, run: () => checkNetns(options.procRoot ?? "/proc") },
    { name: MACVLAN_CHECK, run: () => checkLinkKind(options.netlink, "macvlan") },
    { name: IPVLAN_CHECK, run: () => checkLinkKind(options.netlink, "ipvlan") },
    { name: RDMA_CHECK, run: () => checkRdma(options.netlink) },
  ];
}

export async function checkNetns(procRoot: string): Promise<CheckResult> {
  try {
    await access(`${procRoot}/self/ns/net`);
  } catch (err) {
    return fail(NETNS_CHECK, `${procRoot}/self/ns/net is not there (${errorMessage(err)}): the kernel has no network namespaces`, "use a kernel built with CONFIG_NET_NS (every distribution kernel is)");
  }
  return pass(NETNS_CHECK, "supported");
}

export async function checkLinkKind(netlink: Pick<BatchRunner, "batchAcross">, kind: "macvlan" | "ipvlan"): Promise<CheckResult> {
  const name = kind === "macvlan" ? MACVLAN_CHECK : IPVLAN_CHECK;
  let available: boolean;
  try {
    available = await linkKindAvailable(netlink, kind);
  } catch (err) {
    return warn(name, `cannot tell: ${errorMessage(err)}`, "run doctor as root in the host's network namespace (the agent's pod)");
  }
  if (available) return pass(name, "the kernel has it");
  // Optional: macvlan is the default child, and the refusal at prepare says what to do.
  if (kind === "ipvlan") return pass(name, "the kernel has no ipvlan: claims asking for ipvlan children are refused at prepare (macvlan children work), and Multus ipvlan networks cannot be made");
  return warn(name, "the kernel has no macvlan: shared parents cannot carry macvlan children, and Multus macvlan networks cannot be made", "load the macvlan module (modprobe macvlan) or use a kernel with CONFIG_MACVLAN");
}

export async function checkRdma(netlink: Pick<BatchRunner, "batchAcross">): Promise<CheckResult> {
  let mode: unknown;
  try {
    [mode] = await netlink.batchAcross([{ netns: undefined, op: { op: "rdmaNetnsMode" } }]);
  } catch (err) {
    return pass(RDMA_CHECK, `no RDMA subsystem (${err instanceof NetlinkError && err.errnoName !== undefined ? err.errnoName : errorMessage(err)}): devices are published without RDMA`);
  }
  if (mode === "exclusive") return pass(RDMA_CHECK, "exclusive: an RDMA device moves into its pod with its netdev");
  let devices: unknown[];
  try {
    [devices = []] = (await netlink.batchAcross([{ netns: undefined, op: { op: "rdmaListDevices" } }])) as unknown[][];
  } catch {
    devices = [];
  }
  if (devices.length === 0) return pass(RDMA_CHECK, "shared, and no RDMA device: nothing to move");
  return warn(
    RDMA_CHECK,
    `shared: the node's ${String(devices.length)} RDMA device(s) stay visible to every network namespace and are not moved into pods`,
    "switch to exclusive before RDMA users start: rdma system set netns exclusive (or the kernel parameter ib_core.netns_mode=0); docs/engine.md",
  );
}
