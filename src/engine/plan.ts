/**
 * The attachment plan: what the engine must do for one device of one pod.
 * It is produced by claims/ at prepare time and validated here again at the
 * boundary, since it comes back from disk.
 */
import { z } from "zod";
import { parseCidr, parseIp } from "../common/ip.ts";
import { INTERFACE_NAME, SYSCTL_VALUE } from "../common/linux-names.ts";
import { IPVLAN_MODES, MACVLAN_MODES, type InterfaceSysctl } from "../netlink/index.ts";

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const SYSCTL = /^net\.(ipv4|ipv6)\.(conf|neigh)\.(.+)\.([a-z0-9_]+)$/;
const PCI = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

const cidr = z.string().refine((s) => parseCidr(s) !== undefined, "must be an address with a prefix length, like 198.51.100.2/24");

const ip = z.string().refine((s) => parseIp(s) !== undefined, "must be an IPv4 or IPv6 address");

export const deviceIdentitySchema = z
  .object({
    /** Host interface name at prepare time (names change; used last). */
    name: z.string().regex(INTERFACE_NAME).optional(),
    ifindex: z.number().int().positive().optional(),
    pciAddress: z.string().regex(PCI).optional(),
    permanentMac: z.string().regex(MAC).optional(),
  })
  .refine((d) => Object.values(d).some((v) => v !== undefined), "needs at least one of name, ifindex, pciAddress, permanentMac");

export const routeSchema = z.object({
  /** CIDR; 0.0.0.0/0 and ::/0 are the default routes. */
  destination: cidr,
  gateway: ip.optional(),
  source: ip.optional(),
  scope: z.enum(["universe", "link", "host"]).optional(),
  /** Routing table id; tables above 255 are fine. Default: main (254). */
  table: z.number().int().min(1).max(0xffffffff).optional(),
  metric: z.number().int().min(0).optional(),
});

/**
 * A child interface made on a shared parent (the plan's `device`), created
 * straight in the pod and deleted when the pod goes: the parent itself is
 * never moved nor changed.
 */
export const childSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("macvlan"), mode: z.enum(MACVLAN_MODES) }),
  z.object({ kind: z.literal("ipvlan"), mode: z.enum(IPVLAN_MODES) }),
]);

/** The modes of each child kind, the first of each its default. */
export const CHILD_MODES = { macvlan: ["bridge", ...MACVLAN_MODES.filter((m) => m !== "bridge")], ipvlan: [...IPVLAN_MODES] } as const satisfies Record<ChildInterface["kind"], readonly string[]>;

export const attachmentPlanSchema = z.object({
  /** Stable key of this attachment (claim UID, request, device); the journal key. */
  key: z.string().min(1).max(200),
  device: deviceIdentitySchema,
  /** Pod network namespace path, from the NRI sandbox. */
  netns: z.string().startsWith("/"),
  /** Interface name inside the pod. */
  podName: z.string().regex(INTERFACE_NAME, "must be 1-15 characters of A-Z a-z 0-9 _ . -"),
  mtu: z.number().int().min(68).max(65535).optional(),
  mac: z.string().regex(MAC, "must be a lowercase MAC like 02:00:00:00:00:01").optional(),
  addresses: z.array(cidr).default([]),
  routes: z.array(routeSchema).default([]),
  /**
   * Sysctls of the pod-side interface, set in the pod before it comes up,
   * as full keys naming it: net.ipv4.conf.<podName>.arp_ignore.
   */
  sysctls: z.record(z.string().regex(SYSCTL, "must look like net.ipv4.conf.<podName>.arp_ignore (ipv4|ipv6, conf|neigh)"), z.string().regex(SYSCTL_VALUE)).default({}),
  rdma: z.object({ device: z.string().min(1), mode: z.enum(["shared", "exclusive"]) }).optional(),
  /** Absent: the device itself moves into the pod. */
  child: childSchema.optional(),
}).superRefine((plan, ctx) => {
  if (plan.child?.kind === "ipvlan" && plan.mac !== undefined) {
    ctx.addIssue({ code: "custom", path: ["mac"], message: "an ipvlan child has its parent's MAC; it cannot set one" });
  }
  if (plan.child !== undefined && plan.rdma !== undefined) {
    ctx.addIssue({ code: "custom", path: ["rdma"], message: "a child interface has no RDMA device of its own" });
  }
  for (const key of Object.keys(plan.sysctls)) {
    if (parseSysctlKey(key, plan.podName) === undefined) {
      ctx.addIssue({ code: "custom", path: ["sysctls", key], message: `must name the pod-side interface ${plan.podName}` });
    }
  }
});

export type AttachmentPlan = z.infer<typeof attachmentPlanSchema>;
export type AttachmentPlanInput = z.input<typeof attachmentPlanSchema>;
export type DeviceIdentity = z.infer<typeof deviceIdentitySchema>;
export type PlannedRoute = z.infer<typeof routeSchema>;
export type ChildInterface = z.infer<typeof childSchema>;

/**
 * Splits net.<family>.<table>.<ifname>.<param>, whose interface must be
 * `podName` (which may itself contain dots, like "eth0.100"); undefined when
 * the key does not have that shape.
 */
export function parseSysctlKey(key: string, podName: string): InterfaceSysctl | undefined {
  const m = SYSCTL.exec(key);
  if (m?.[3] !== podName || m[4] === undefined) return undefined;
  return { family: m[1] === "ipv6" ? "ipv6" : "ipv4", table: m[2] === "neigh" ? "neigh" : "conf", param: m[4] };
}

/** How a person would name the device in a message. */
export function describeDevice(d: DeviceIdentity): string {
  return d.name ?? d.pciAddress ?? d.permanentMac ?? `ifindex ${d.ifindex ?? "?"}`;
}
