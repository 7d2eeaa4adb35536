/**
 * Shared parents: a NIC that many pods use at once through children
 * (macvlan, ipvlan) the agent creates on it in each pod, instead of one pod
 * taking the whole NIC. The policy's `share` block marks the devices of an
 * include rule as shared parents; this module checks it and resolves it per
 * device into what is published (DRA consumable capacity, KEP-5075): the
 * capacities `interfaces` and `bandwidth`, each with the request policy the
 * scheduler applies to every allocation.
 *
 * Bandwidth is in bits per second, written as a Kubernetes quantity: "10G" is
 * 10^10 bit/s, as link speeds are counted (binary suffixes such as "25Gi" are
 * taken too, and mean 25×2^30 bit/s). Every bandwidth figure must be a whole
 * number of bits per second, which keeps the API server's step arithmetic
 * exact on every release.
 *
 * The figures obey the API server's rules for a request policy (min, max and
 * default within the capacity; default and max on a step from min; at least
 * one step above min), checked here so that one device's figures can never
 * make the server refuse the node's whole ResourceSlice: a device whose
 * figures break them is not published, and its report says which and why.
 */
import { z } from "zod";
import { formatDecimalQuantity, wholeQuantity } from "../kube/quantity.ts";
import type { NetDevice } from "./device.ts";

/** Capacity names as published: unqualified, so a claim asks `capacity.requests: {bandwidth: 1G}` whatever the driver's name. */
export const SHARE_CAPACITY = { interfaces: "interfaces", bandwidth: "bandwidth" } as const;

/**
 * Requests are rounded up to a whole number of steps above min: 1 Mbit/s
 * unless the policy says otherwise, fine enough for any link and coarse
 * enough to read (the unit link speeds and tc rates use).
 */
export const DEFAULT_BANDWIDTH_STEP = "1M";

const MAX_INTERFACES = 4096;

/** A figure in bits per second. */
const bitsPerSecond = z
  .string({ error: 'must be a quantity of bits per second in quotes, such as "10G" or "500M"' })
  .refine((text) => (wholeQuantity(text) ?? 0n) > 0n, {
    error: 'must be a positive whole number of bits per second as a Kubernetes quantity, such as "10G", "25G" or "500M" (k, M, G, T are powers of 1000)',
  });

const bandwidthPolicySchema = z.strictObject({
  /** What an allocation that asks for no bandwidth consumes; default: an equal share, bandwidth / interfaces. */
  default: bitsPerSecond.optional(),
  /** The least an allocation consumes; smaller requests are rounded up to it. Default: step. */
  min: bitsPerSecond.optional(),
  /** The most one allocation may ask for; default: no limit below the bandwidth itself. */
  max: bitsPerSecond.optional(),
  /** Requests are rounded up to min plus a whole number of steps. Default: 1M. */
  step: bitsPerSecond.optional(),
});

export const shareSchema = z
  .strictObject({
    /** How many children (one per pod interface) the parent may carry at once. */
    interfaces: z.int({ error: `must be a whole number from 1 to ${MAX_INTERFACES}: how many pod interfaces the parent may carry at once` })
      .min(1, { error: `must be at least 1: how many pod interfaces the parent may carry at once` })
      .max(MAX_INTERFACES, { error: `must be at most ${MAX_INTERFACES}` }),
    /** Bits per second the children share; default: the link speed. */
    bandwidth: bitsPerSecond.optional(),
    bandwidthPolicy: bandwidthPolicySchema.optional(),
  })
  .superRefine((share, ctx) => {
    const bandwidth = share.bandwidth === undefined ? undefined : { value: share.bandwidth, from: "share.bandwidth" };
    for (const problem of bandwidthPolicyProblems(share.bandwidthPolicy ?? {}, bandwidth)) {
      ctx.addIssue({ code: "custom", path: problem.path, message: problem.message });
    }
  });

export type ShareRule = z.infer<typeof shareSchema>;
type BandwidthPolicyRule = z.infer<typeof bandwidthPolicySchema>;

/** How the scheduler charges each allocation of a capacity (the API's CapacityRequestPolicy). */
export interface CapacityRequestPolicy {
  readonly default: string;
  readonly validValues?: readonly string[];
  readonly validRange?: { readonly min: string; readonly max?: string; readonly step: string };
}

/** A device published as a shared parent: the figures its capacities carry. */
export interface SharedParent {
  /** How many children the parent may carry; each allocation consumes exactly one. */
  readonly interfaces: number;
  /** Bits per second the children share (a quantity); absent when neither the policy nor the link gives a figure. */
  readonly bandwidth?: string;
  /** Where `bandwidth` comes from. */
  readonly bandwidthFrom?: "share.bandwidth" | "link speed";
  /** Per capacity, how each allocation consumes it. */
  readonly requestPolicy: { readonly interfaces: CapacityRequestPolicy; readonly bandwidth?: CapacityRequestPolicy };
}

/** Every allocation takes one child, never more, so `interfaces` counts pods' interfaces exactly. */
const ONE_INTERFACE: CapacityRequestPolicy = { default: "1", validValues: ["1"] };

interface Problem {
  /** Below the share block: ["bandwidthPolicy", "min"]. */
  readonly path: string[];
  readonly message: string;
}

/** The valid range a policy describes, with the defaults filled in. */
function rangeOf(policy: BandwidthPolicyRule): { min: string; max?: string; step: string } {
  const step = policy.step ?? DEFAULT_BANDWIDTH_STEP;
  return { min: policy.min ?? step, ...(policy.max !== undefined && { max: policy.max }), step };
}

/**
 * What the API server would refuse in a bandwidth request policy, or in its
 * figures against the bandwidth when that is known. A default left out is
 * not checked: the resolved one is made to fit.
 */
function bandwidthPolicyProblems(policy: BandwidthPolicyRule, bandwidth: { value: string; from: string } | undefined): Problem[] {
  const range = rangeOf(policy);
  const positive = (text: string | undefined): bigint | undefined => {
    const figure = text === undefined ? undefined : wholeQuantity(text);
    return figure !== undefined && figure > 0n ? figure : undefined;
  };
  const texts = [range.min, range.step, range.max, policy.default];
  const figures = texts.map(positive);
  // A figure that is no positive whole quantity has its own issue from the schema; a bad bandwidth is as good as none here.
  if (figures.some((figure, i) => texts[i] !== undefined && figure === undefined)) return [];
  const [min = 0n, step = 1n, max, defaultValue] = figures;
  const capacity = positive(bandwidth?.value);
  const problems: Problem[] = [];
  const at = (field: string, message: string): void => {
    problems.push({ path: ["bandwidthPolicy", field], message });
  };
  const minText = policy.min ?? `${range.min} (${policy.step === undefined ? "the default" : "step"})`;
  const stepText = policy.step ?? `${range.step} (the default)`;
  const onStep = (n: bigint): boolean => (n - min) % step === 0n;
  if (capacity !== undefined && bandwidth !== undefined) {
    const over = `is more than the bandwidth ${bandwidth.value} (${bandwidth.from})`;
    if (min > capacity) at("min", `${minText} ${over}: lower it, or set share.bandwidth to what the parent carries`);
    else if (min + step > capacity) at("step", `min ${minText} plus one step ${stepText} ${over}: lower the step, so that an allocation can be more than min`);
    if (max !== undefined && max > capacity) at("max", `${range.max ?? ""} ${over}: lower it, or leave it out (the bandwidth is the limit)`);
    if (defaultValue !== undefined && defaultValue > capacity) at("default", `${policy.default ?? ""} ${over}: lower it, or leave it out (an equal share, bandwidth / interfaces)`);
  }
  if (max !== undefined) {
    if (max < min) at("max", `${range.max ?? ""} is less than min ${minText}`);
    else if (!onStep(max)) at("max", `${range.max ?? ""} must be min ${minText} plus a whole number of steps of ${stepText}`);
  }
  if (defaultValue !== undefined) {
    if (defaultValue < min) at("default", `${policy.default ?? ""} is less than min ${minText}`);
    else if (max !== undefined && defaultValue > max) at("default", `${policy.default ?? ""} is more than max ${range.max ?? ""}`);
    else if (!onStep(defaultValue)) at("default", `${policy.default ?? ""} must be min ${minText} plus a whole number of steps of ${stepText}`);
  }
  return problems;
}

export type ShareResolution =
  | { readonly parent: SharedParent; readonly note: string }
  | { readonly parent?: undefined; readonly problem: string };

/**
 * The figures `device` is published with under `share`: its bandwidth is the
 * policy's, else its link speed; a default request the policy leaves out is
 * an equal share, bandwidth / interfaces, so a parent fills evenly whether or
 * not its pods say what they need, and pods that ask for nothing never crowd
 * out the bandwidth others reserved.
 */
export function resolveShare(share: ShareRule, device: NetDevice): ShareResolution {
  const interfaces = share.interfaces;
  const base = { interfaces, requestPolicy: { interfaces: ONE_INTERFACE } };
  const shared = `published as a shared parent: ${interfaces} interfaces`;
  const bandwidth =
    share.bandwidth !== undefined
      ? { value: share.bandwidth, from: "share.bandwidth" as const }
      : device.speedMbps !== undefined
        ? { value: formatDecimalQuantity(BigInt(device.speedMbps) * 1_000_000n), from: "link speed" as const }
        : undefined;
  if (bandwidth === undefined) {
    const unused = share.bandwidthPolicy === undefined ? "" : "; share.bandwidthPolicy unused";
    return { parent: base, note: `${shared}, no bandwidth capacity (the link reports no speed and share.bandwidth is not set${unused})` };
  }
  const policy = share.bandwidthPolicy ?? {};
  const problems = bandwidthPolicyProblems(policy, bandwidth);
  const [first] = problems;
  if (first !== undefined) {
    return { problem: `not published: shared parent figures the API server would refuse: share.${first.path.join(".")} ${first.message}` };
  }
  const validRange = rangeOf(policy);
  const resolved: SharedParent = {
    interfaces,
    bandwidth: bandwidth.value,
    bandwidthFrom: bandwidth.from,
    requestPolicy: { ...base.requestPolicy, bandwidth: { default: policy.default ?? equalShare(bandwidth.value, interfaces, validRange), validRange } },
  };
  return { parent: resolved, note: `${shared}, bandwidth ${bandwidth.value} bit/s (${bandwidth.from})` };
}

/** bandwidth / interfaces, rounded down onto the range's steps and kept within it. */
function equalShare(bandwidth: string, interfaces: number, range: { min: string; max?: string; step: string }): string {
  const [capacity, min, step] = [bandwidth, range.min, range.step].map((text) => wholeQuantity(text) ?? 0n) as [bigint, bigint, bigint];
  const max = range.max === undefined ? capacity : (wholeQuantity(range.max) ?? capacity);
  const share = capacity / BigInt(interfaces);
  const onStep = share <= min ? min : min + ((share - min) / step) * step;
  return formatDecimalQuantity(onStep > max ? max : onStep);
}
