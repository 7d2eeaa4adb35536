/**
 * The attachment journal: one store record per attachment, written (and
 * fsynced) before the first kernel change of an attach or a detach. It
 * holds the plan, the device's original host state, and the intent:
 * "attach" (the device belongs in the pod) or "detach" (it belongs back on
 * the host). Every step checks the kernel before acting, so re-running the
 * steps after a crash converges on the intent; that is how recovery works.
 * A third state, "lost", marks a device that vanished while its pod lived
 * (hot-unplug, a VF removed): there is nothing to move either way, and the
 * record stays only so that the claim can say so, until the pod is gone.
 */
import { z } from "zod";
import type { Collection, StateStore } from "../store/index.ts";
import { attachmentPlanSchema } from "./plan.ts";

const addressSchema = z.object({
  family: z.union([z.literal(4), z.literal(6)]),
  index: z.number().int(),
  address: z.string(),
  prefixLength: z.number().int(),
  broadcast: z.string().optional(),
  label: z.string().optional(),
  scope: z.number().int(),
  flags: z.number().int(),
  proto: z.number().int().optional(),
});

const routeSchema = z.object({
  family: z.union([z.literal(4), z.literal(6)]),
  table: z.number().int(),
  dst: z.string().optional(),
  dstLength: z.number().int(),
  gateway: z.string().optional(),
  prefsrc: z.string().optional(),
  oif: z.number().int().optional(),
  priority: z.number().int().optional(),
  protocol: z.number().int(),
  scope: z.number().int(),
  type: z.number().int(),
  pref: z.number().int().optional(),
  metricsHex: z.string().optional(),
  multipath: z.boolean().optional(),
});

export const hostStateSchema = z.object({
  name: z.string(),
  ifindex: z.number().int(),
  mtu: z.number().int(),
  mac: z.string().optional(),
  permanentMac: z.string().optional(),
  parentDevice: z.string().optional(),
  kind: z.string().optional(),
  up: z.boolean(),
  /** Addresses to put back (kernel-made ones are left to the kernel). */
  addresses: z.array(addressSchema),
  /** Routes through the device to put back (kernel-made ones excluded). */
  routes: z.array(routeSchema),
});

export type HostState = z.infer<typeof hostStateSchema>;

export const journalRecordSchema = z.object({
  plan: attachmentPlanSchema,
  intent: z.enum(["attach", "detach", "lost"]),
  host: hostStateSchema,
});

export type JournalRecord = z.infer<typeof journalRecordSchema>;

/**
 * The engine writes records only from a plan the plan schema has just parsed
 * and host state its netlink decoder produced, so it trusts its writes:
 * validating each record again would cost close to a millisecond (cold) on
 * every pod's start. Records are still validated when read back.
 */
export function openJournal(store: StateStore): Collection<JournalRecord> {
  return store.collection("attachments", journalRecordSchema, { trustWrites: true });
}
