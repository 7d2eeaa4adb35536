/**
 * The claim plan: what prepare decided for each of a claim's devices, stored
 * with the prepared claim and read back when the pod sandbox starts, after a
 * restart, and at unprepare. It is validated again when read, since it comes
 * back from disk and may have been written by another agent version.
 */
import { z } from "zod";
import { deepFreeze } from "../common/deep-freeze.ts";
import { childSchema } from "../engine/index.ts";
import { firstIssue } from "../common/zod-issue.ts";

const ref = z.object({ namespace: z.string(), name: z.string(), uid: z.string().min(1) });

const rdmaSchema = z.object({
  device: z.string().min(1),
  charDevices: z.array(z.string().startsWith("/dev/")),
});

const ipamLeaseSchema = z.object({
  plugin: z.string().min(1),
  config: z.record(z.string(), z.unknown()),
  containerId: z.string().min(1),
  ifName: z.string().min(1),
  addresses: z.array(z.string()),
});

const routeSchema = z.object({
  destination: z.string(),
  gateway: z.string().optional(),
  source: z.string().optional(),
  table: z.number().int().optional(),
  scope: z.enum(["universe", "link", "host"]).optional(),
  metric: z.number().int().optional(),
});

export const devicePlanSchema = z.object({
  /** The allocation result: request (maybe `req/sub`), pool and DRA device name. */
  request: z.string().min(1),
  pool: z.string().min(1),
  device: z.string().min(1),
  mode: z.enum(["native", "multus"]),
  /** How the engine finds the netdev later, wherever it is by then. */
  identity: z.object({
    name: z.string().optional(),
    ifindex: z.number().int().positive().optional(),
    pciAddress: z.string().optional(),
    permanentMac: z.string().optional(),
  }),
  interface: z.object({
    /** Asked for by the config; otherwise assigned when the pod starts. */
    name: z.string().optional(),
    mtu: z.number().int().optional(),
    hardwareAddress: z.string().optional(),
    addresses: z.array(z.string()),
    sysctls: z.record(z.string(), z.string()),
  }),
  routes: z.array(routeSchema),
  ipam: ipamLeaseSchema.optional(),
  rdma: rdmaSchema.optional(),
  cdiDeviceIds: z.array(z.string()),
  /**
   * The host path of the device metadata file (KEP-5304) of the device's
   * request, updated with its networkData once it is in its pod; absent in
   * plans from agents without device metadata.
   */
  metadataFile: z.string().startsWith("/").optional(),
  /** For mode multus: the resourceName a NetworkAttachmentDefinition must carry. */
  resourceName: z.string().optional(),
  /** The allocation's share of a device allocated to many claims (a shared parent); absent for a whole device. */
  shareID: z.string().optional(),
  /** A shared parent's child made in the pod (the identity names the parent); absent: the device itself moves. */
  child: childSchema.optional(),
});

export const claimPlanSchema = z.object({
  version: z.literal(1),
  claim: ref,
  /** The claim's resource.kubernetes.io/pod-claim-name, where its metadata files are mounted (restore). */
  podClaimName: z.string().optional(),
  /** The one pod the claim is reserved for. */
  pod: ref,
  /**
   * The names of the claims that pod consumes, where the prepare read the pod (to check
   * interface names): the check for claims another pod holds then needs no read of its own.
   */
  podClaims: z.array(z.string()).optional(),
  devices: z.array(devicePlanSchema),
});

export type DevicePlan = z.infer<typeof devicePlanSchema>;
export type ClaimPlan = z.infer<typeof claimPlanSchema>;
export type IpamLeaseRecord = z.infer<typeof ipamLeaseSchema>;

/**
 * Plans already parsed, by the stored value they came from. The state store hands out
 * frozen records, decoded again only when their file changed, and every pod start and
 * detach reads every prepared claim's plan: parsing each again cost about 4% of the main
 * thread's work under pod churn, and more in garbage (docs/scale.md). A frozen value cannot
 * change, so its parse stands; the plan returned is frozen too, being shared.
 */
const parsedPlans = new WeakMap<object, ClaimPlan>();

export function parseClaimPlan(value: unknown, where: string): ClaimPlan {
  const frozen = typeof value === "object" && value !== null && Object.isFrozen(value) ? value : undefined;
  const known = frozen && parsedPlans.get(frozen);
  if (known) return known;
  const parsed = claimPlanSchema.safeParse(value);
  if (parsed.success) {
    if (frozen) parsedPlans.set(frozen, deepFreeze(parsed.data));
    return parsed.data;
  }
  throw new TypeError(`Cannot use the stored plan of ${where}: ${firstIssue(parsed.error)}`);
}
