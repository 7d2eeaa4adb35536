/**
 * Device selection policy: which eligible devices the agent publishes.
 *
 * Another driver (an SR-IOV operator pool, OVN-Kubernetes switchdev VFs, a
 * second network driver) may own some NICs and nothing upstream arbitrates,
 * so an administrator must be able to publish everything (the upstream
 * default: `include` absent) or nothing until devices are selected (the
 * OpenShift default: `include: []`). Exclusions always win over inclusions.
 *
 * A selector matches when every field it sets matches. Name fields take
 * shell-style globs (`ens*`, `eth?`, `ens3f[0-1]`, `pci-0000-3b-*`); `attributes` compares the
 * unqualified attribute names of docs/devices.md (`driver: mlx5_core`,
 * `isSriovVf: true`, `pcieRoot: pci0000:3a`), string values again as globs.
 *
 * Devices of a guarded kind (guard.ts) are published only by an include rule
 * that opts in: its `kinds` lists every guarded kind of the device, or it
 * names the device exactly. `kinds` selects nothing by itself: it widens
 * what the rule's selector may publish, so a rule still needs a selector.
 */
import { z } from "zod";
import type { AttributeValue, DeviceAttributes } from "./attributes.ts";
import { globMatches, isExactName } from "./glob.ts";
import { guardedKindSchema, type GuardedKind } from "./guard.ts";
import { shareSchema, type ShareRule } from "./share.ts";

const glob = z.string().min(1).max(253);

const selectorShape = {
  /** Host interface name. */
  ifName: glob.optional(),
  /** Published DRA device name (pci-0000-3b-00-0, or the interface name). */
  deviceName: glob.optional(),
  attributes: z.record(z.string().min(1).max(32), z.union([z.string(), z.number(), z.boolean()])).optional(),
};

function hasCriteria(s: { ifName?: unknown; deviceName?: unknown; attributes?: unknown }): boolean {
  return s.ifName !== undefined || s.deviceName !== undefined || s.attributes !== undefined;
}

export const deviceSelectorSchema = z
  .strictObject(selectorShape)
  .refine(hasCriteria, { error: "a selector must set ifName, deviceName or attributes" });

export type DeviceSelector = z.infer<typeof deviceSelectorSchema>;

export const includeRuleSchema = z
  .strictObject({
    ...selectorShape,
    /** Guarded kinds this rule may publish besides unguarded devices (opt-in, not a selector). */
    kinds: z.array(guardedKindSchema).min(1).optional(),
    /**
     * k8s.cni.cncf.io/resourceName for devices this rule selects; it must equal
     * the k8s.v1.cni.cncf.io/resourceName annotation of the NetworkAttachmentDefinition.
     */
    multusResourceName: z.string().min(1).max(63).optional(),
    /**
     * Publishes the devices this rule selects as shared parents: many pods
     * each get a child interface on them (share.ts), instead of one pod the device.
     */
    share: shareSchema.optional(),
  })
  .refine(hasCriteria, {
    error: "an include rule must set ifName, deviceName or attributes (kinds only opts in to kinds; it selects nothing)",
  });

export type IncludeRule = z.infer<typeof includeRuleSchema>;

export const devicePolicySchema = z
  .strictObject({
    /** Absent: every eligible device of no guarded kind. A list: only devices some rule selects ([] publishes nothing). */
    include: z.array(includeRuleSchema).optional(),
    /** Devices never published, whatever include says. */
    exclude: z.array(deviceSelectorSchema).default(() => []),
    /** k8s.cni.cncf.io/resourceName for PCI devices whose include rule names none. */
    multusResourceName: z.string().min(1).max(63).default("netclaim.dev/netdev"),
  })
  .prefault({});

export type DevicePolicy = z.infer<typeof devicePolicySchema>;

export interface PolicySubject {
  readonly ifName: string;
  readonly deviceName: string;
  readonly attributes: DeviceAttributes;
  /** What the guard found (guardedKinds()); empty for a device it lets through. */
  readonly guardedKinds: readonly GuardedKind[];
}

export type PolicyVerdict =
  | { readonly publish: true; readonly reason: string; readonly multusResourceName: string; readonly share?: ShareRule }
  | { readonly publish: false; readonly reason: string };

export function evaluatePolicy(policy: DevicePolicy, subject: PolicySubject): PolicyVerdict {
  const excludedBy = policy.exclude.findIndex((selector) => selectorMatches(selector, subject));
  if (excludedBy >= 0) {
    return { publish: false, reason: `excluded by policy exclude[${excludedBy}] ${describeSelector(policy.exclude[excludedBy])}` };
  }
  if (policy.include === undefined) {
    if (subject.guardedKinds.length > 0) return guardedVerdict(subject.guardedKinds);
    return { publish: true, reason: "eligible (policy publishes every eligible device)", multusResourceName: policy.multusResourceName };
  }
  const includedBy = policy.include.findIndex((rule) => selectorMatches(rule, subject) && optsIn(rule, subject));
  const rule = policy.include[includedBy];
  if (rule === undefined) {
    if (subject.guardedKinds.length > 0) return guardedVerdict(subject.guardedKinds);
    return {
      publish: false,
      reason: policy.include.length === 0 ? "not selected (policy include is empty: opt-in)" : "not selected by any policy include rule",
    };
  }
  return {
    publish: true,
    reason: `selected by policy include[${includedBy}] ${describeSelector(rule)}`,
    multusResourceName: rule.multusResourceName ?? policy.multusResourceName,
    ...(rule.share !== undefined && { share: rule.share }),
  };
}

/** Whether a rule that selects the device may publish it despite the guard. */
function optsIn(rule: IncludeRule, subject: PolicySubject): boolean {
  const namesExactly = [rule.ifName, rule.deviceName].some((name) => name !== undefined && isExactName(name));
  return namesExactly || subject.guardedKinds.every((kind) => rule.kinds?.includes(kind) === true);
}

function guardedVerdict(kinds: readonly GuardedKind[]): PolicyVerdict {
  const list = kinds.join(", ");
  return { publish: false, reason: `never published by default: ${list} (opt in with include[].kinds: [${list}] or name it exactly)` };
}

export function selectorMatches(selector: DeviceSelector, subject: PolicySubject): boolean {
  if (selector.ifName !== undefined && !globMatches(selector.ifName, subject.ifName)) return false;
  if (selector.deviceName !== undefined && !globMatches(selector.deviceName, subject.deviceName)) return false;
  for (const [name, wanted] of Object.entries(selector.attributes ?? {})) {
    const actual = subject.attributes.local[name] ?? subject.attributes.standard[name];
    if (!valueMatches(wanted, actual)) return false;
  }
  return true;
}

function valueMatches(wanted: AttributeValue, actual: AttributeValue | undefined): boolean {
  if (actual === undefined) return false;
  if (typeof wanted === "string" && typeof actual === "string") return globMatches(wanted, actual);
  return wanted === actual;
}

function describeSelector(selector: DeviceSelector | IncludeRule | undefined): string {
  if (selector === undefined) return "";
  const { ifName, deviceName, attributes } = selector;
  const kinds = "kinds" in selector ? selector.kinds : undefined;
  return JSON.stringify({ ifName, deviceName, attributes, kinds });
}
