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
 */
import { z } from "zod";
import type { AttributeValue, DeviceAttributes } from "./attributes.ts";

const glob = z.string().min(1).max(253);

const selectorShape = {
  /** Host interface name. */
  ifName: glob.optional(),
  /** Published DRA device name (pci-0000-3b-00-0, or the interface name). */
  deviceName: glob.optional(),
  attributes: z.record(z.string().min(1).max(32), z.union([z.string(), z.number(), z.boolean()])).optional(),
};

const selectsSomething = {
  error: "a selector must set ifName, deviceName or attributes",
} as const;

function hasCriteria(s: { ifName?: unknown; deviceName?: unknown; attributes?: unknown }): boolean {
  return s.ifName !== undefined || s.deviceName !== undefined || s.attributes !== undefined;
}

export const deviceSelectorSchema = z.strictObject(selectorShape).refine(hasCriteria, selectsSomething);

export type DeviceSelector = z.infer<typeof deviceSelectorSchema>;

export const includeRuleSchema = z
  .strictObject({
    ...selectorShape,
    /**
     * k8s.cni.cncf.io/resourceName for devices this rule selects; it must equal
     * the k8s.v1.cni.cncf.io/resourceName annotation of the NetworkAttachmentDefinition.
     */
    multusResourceName: z.string().min(1).max(63).optional(),
  })
  .refine(hasCriteria, selectsSomething);

export type IncludeRule = z.infer<typeof includeRuleSchema>;

/** Interfaces that belong to container runtimes and CNIs, never to workloads. */
export const DEFAULT_EXCLUDES: readonly DeviceSelector[] = [
  { ifName: "veth*" },
  { ifName: "docker0" },
  { ifName: "cni0" },
  { ifName: "cilium_*" },
  { ifName: "flannel.*" },
  { ifName: "genev_sys_*" },
  { ifName: "ovs-system" },
  { ifName: "br-int" },
  { ifName: "br-ex" },
];

export const devicePolicySchema = z
  .strictObject({
    /** Absent: every eligible device. A list: only devices some rule selects ([] publishes nothing). */
    include: z.array(includeRuleSchema).optional(),
    /** Devices never published, whatever include says. */
    exclude: z.array(deviceSelectorSchema).default(() => [...DEFAULT_EXCLUDES]),
    /** k8s.cni.cncf.io/resourceName for PCI devices whose include rule names none. */
    multusResourceName: z.string().min(1).max(63).default("netclaim.dev/netdev"),
  })
  .prefault({});

export type DevicePolicy = z.infer<typeof devicePolicySchema>;

export interface PolicySubject {
  readonly ifName: string;
  readonly deviceName: string;
  readonly attributes: DeviceAttributes;
}

export type PolicyVerdict =
  | { readonly publish: true; readonly reason: string; readonly multusResourceName: string }
  | { readonly publish: false; readonly reason: string };

export function evaluatePolicy(policy: DevicePolicy, subject: PolicySubject): PolicyVerdict {
  const excludedBy = policy.exclude.findIndex((selector) => selectorMatches(selector, subject));
  if (excludedBy >= 0) {
    return { publish: false, reason: `excluded by policy exclude[${excludedBy}] ${describeSelector(policy.exclude[excludedBy])}` };
  }
  if (policy.include === undefined) {
    return { publish: true, reason: "eligible (policy publishes every eligible device)", multusResourceName: policy.multusResourceName };
  }
  const includedBy = policy.include.findIndex((rule) => selectorMatches(rule, subject));
  const rule = policy.include[includedBy];
  if (rule === undefined) {
    return {
      publish: false,
      reason: policy.include.length === 0 ? "not selected (policy include is empty: opt-in)" : "not selected by any policy include rule",
    };
  }
  return {
    publish: true,
    reason: `selected by policy include[${includedBy}] ${describeSelector(rule)}`,
    multusResourceName: rule.multusResourceName ?? policy.multusResourceName,
  };
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

const globCache = new Map<string, RegExp>();

/** Shell-style: * any run, ? one character, everything else literal. */
/** `*`, `?` and bracket classes (`[0-9]`, `[!a]`), as the shell has them; everything else literal. */
function globToRegExp(pattern: string): RegExp {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    const close = c === "[" ? pattern.indexOf("]", i + 2) : -1;
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (close !== -1) {
      const body = pattern.slice(i + 1, close);
      const negated = body.startsWith("!");
      out += `[${negated ? "^" : ""}${(negated ? body.slice(1) : body).replace(/[\\\]^]/g, "\\$&")}]`;
      i = close;
    } else out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}


export function globMatches(pattern: string, text: string): boolean {
  let re = globCache.get(pattern);
  if (re === undefined) {
    re = globToRegExp(pattern);
    globCache.set(pattern, re);
  }
  return re.test(text);
}

function describeSelector(selector: DeviceSelector | undefined): string {
  if (selector === undefined) return "";
  const { ifName, deviceName, attributes } = selector;
  return JSON.stringify({ ifName, deviceName, attributes });
}
