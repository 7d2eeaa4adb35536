/**
 * One ResourceClaim, several pods. DRA lets pods share a claim (the
 * scheduler reserves it for each of them), but the kubelet prepares a claim
 * once per node, for the first of them, so prepare's "reserved for exactly
 * one pod" check never sees the others; and a network device can be in one
 * pod at a time.
 *
 * The devices therefore stay with the pod the claim was prepared for, its
 * holder. Any other pod that consumes the claim is refused when its sandbox
 * starts (or, where this agent did not see that, when one of its containers
 * is created), with an error naming the claim and the holder and a Warning
 * event on the pod and on the claim: the runtime fails the sandbox and the
 * kubelet retries it. Once the holder is gone (no longer among the claim's
 * consumers, its devices back on the host), the next of those pods to try
 * takes the claim over and starts with its devices.
 *
 * NRI does not say which claims a pod consumes, so the API server is asked,
 * and only when a claim could be shared with the pod (prepared, in the
 * pod's namespace and held by another pod): the pod is read once for the
 * claims it consumes (unless the prepare of one of its own claims read it
 * already, to check interface names, and recorded them in the plan), and
 * only a claim among them is read for its `status.reservedFor`. A pod with
 * no such claim in its namespace costs no request; one in a namespace where
 * many pods hold claims, one request, not one per claim.
 * Static pods cannot consume claims and are never checked, so they start
 * whatever the API server does. When a claim cannot be read, the pod is
 * refused (the kubelet retries): it may be one that would start without
 * its interfaces.
 */
import type { Logger } from "pino";
import { parseClaimPlan, type ClaimPlan } from "../claims/plan.ts";
import { errorMessage } from "../common/errors.ts";
import type { ClaimRef, ClaimState, JsonValue } from "../dra/index.ts";
import { NriHandlerError, StatusCode, type PodSandboxInfo } from "../nri/index.ts";
import type { ClaimStatusReporter } from "./status-reporter.ts";

/** Who consumes what, as the API server has it now. */
export interface ClaimConsumers {
  /** The UIDs of the pods a claim is reserved for (`status.reservedFor`); undefined when no claim with this UID exists any more. */
  ofClaim(claim: ClaimRef, signal: AbortSignal): Promise<readonly string[] | undefined>;
  /**
   * The names of the claims a pod consumes (`spec.resourceClaims`, and `status.resourceClaimStatuses` for
   * those made from templates); undefined when no pod with this UID exists any more.
   */
  ofPod(pod: { namespace: string; name: string; uid: string }, signal: AbortSignal): Promise<ReadonlySet<string> | undefined>;
}

/** Event reasons on the refused pod and on the claim. */
export const SharedClaimReason = { InUse: "NetworkClaimInUse", HandedOver: "NetworkClaimHandedOver" } as const;

/** How long the claims of one pod may take to read: well inside the runtime's 2 s request timeout. */
const READ_BUDGET_MS = 1_000;
/** The kubelet's annotation naming where a pod came from; "api" for every pod that can consume a claim. */
const CONFIG_SOURCE = "kubernetes.io/config.source";

export interface SharedClaimsOptions {
  claims: ClaimState;
  consumers: ClaimConsumers;
  /** The engine's journaled attachment keys (`<claimUid>:<device>`). */
  attachments: () => Promise<readonly string[]>;
  status: Pick<ClaimStatusReporter, "event">;
  logger: Logger;
}

/** A prepared device, as the NRI handlers list them. */
export interface PreparedDeviceOf {
  claim: ClaimPlan;
  key: string;
}

interface Candidate {
  plan: ClaimPlan;
  keys: string[];
}

export class SharedClaims {
  readonly #options: SharedClaimsOptions;
  /** Pods found to consume no claim another pod holds, by UID, until their sandbox is removed. */
  readonly #admitted = new Set<string>();

  constructor(options: SharedClaimsOptions) {
    this.#options = options;
  }

  /**
   * Refuses (NriHandlerError) a pod that consumes a claim another pod holds,
   * or hands it the claims whose holder is gone; resolves true when it did,
   * so the caller reads the plans again. `prepared` lists the prepared
   * devices (read only when needed). With `cached`, a pod admitted before is
   * not checked again (a container of an admitted sandbox).
   */
  async admit(pod: PodSandboxInfo, prepared: () => Promise<readonly PreparedDeviceOf[]>, options: { signal: AbortSignal; cached?: boolean }): Promise<boolean> {
    if (options.cached === true && this.#admitted.has(pod.uid)) return false;
    const source = pod.annotations[CONFIG_SOURCE];
    if (source !== undefined && source !== "api") return false;
    const candidates = new Map<string, Candidate>();
    let recorded: ReadonlySet<string> | undefined;
    for (const p of await prepared()) {
      if (p.claim.pod.uid === pod.uid && p.claim.podClaims !== undefined) recorded = new Set(p.claim.podClaims);
      if (p.claim.pod.uid === pod.uid || p.claim.claim.namespace !== pod.namespace) continue;
      const candidate = candidates.get(p.claim.claim.uid) ?? { plan: p.claim, keys: [] };
      candidate.keys.push(p.key);
      candidates.set(p.claim.claim.uid, candidate);
    }
    let handedOver = false;
    if (candidates.size > 0) {
      const signal = AbortSignal.any([options.signal, AbortSignal.timeout(READ_BUDGET_MS)]);
      const consumed = recorded ?? (await this.#claimsOf(pod, signal));
      const list = [...candidates.values()].filter((c) => consumed?.has(c.plan.claim.name) ?? true);
      const consumers = await Promise.all(list.map((c) => this.#consumersOf(pod, c, signal)));
      const shared = list.flatMap((candidate, i) => (consumers[i]?.includes(pod.uid) === true ? [{ candidate, holderStays: consumers[i].includes(candidate.plan.pod.uid) }] : []));
      // Every refusal before any hand-over, so a refused pod takes nothing.
      for (const { candidate, holderStays } of shared) if (holderStays) this.#refuse(pod, candidate);
      for (const { candidate } of shared) {
        await this.#handOver(pod, candidate, signal);
        handedOver = true;
      }
    }
    this.#admitted.add(pod.uid);
    return handedOver;
  }

  /** Forgets a pod whose sandbox is gone. */
  forget(podUID: string): void {
    this.#admitted.delete(podUID);
  }

  /** Forgets every pod but these (the runtime's pods after a re-synchronization). */
  retain(podUIDs: Iterable<string>): void {
    const keep = new Set(podUIDs);
    for (const uid of this.#admitted) if (!keep.has(uid)) this.#admitted.delete(uid);
  }

  /** The claims the pod consumes; undefined when the pod cannot be read, and then every candidate claim is read instead. */
  async #claimsOf(pod: PodSandboxInfo, signal: AbortSignal): Promise<ReadonlySet<string> | undefined> {
    try {
      return await this.#options.consumers.ofPod(pod, signal);
    } catch (err) {
      this.#options.logger.info({ pod: `${pod.namespace}/${pod.name}`, err: errorMessage(err) }, "cannot read which claims the pod consumes; reading the claims other pods hold instead");
      return undefined;
    }
  }

  async #consumersOf(pod: PodSandboxInfo, candidate: Candidate, signal: AbortSignal): Promise<readonly string[]> {
    const { claim } = candidate.plan;
    try {
      return (await this.#options.consumers.ofClaim(claim, signal)) ?? [];
    } catch (err) {
      throw new NriHandlerError(
        StatusCode.UNAVAILABLE,
        `netclaim cannot tell whether pod ${pod.namespace}/${pod.name} shares claim ${claim.namespace}/${claim.name}, which pod ${podName(candidate.plan)} holds, ` +
          `so it cannot start the pod yet (the kubelet retries): reading the claim failed: ${errorMessage(err)}`,
        { cause: err },
      );
    }
  }

  #refuse(pod: PodSandboxInfo, candidate: Candidate): never {
    const { status, logger } = this.#options;
    const { claim } = candidate.plan;
    const devices = candidate.plan.devices.map((d) => d.device).join(", ");
    const message =
      `claim ${claim.namespace}/${claim.name} (device ${devices}) is in use by pod ${podName(candidate.plan)} (uid ${candidate.plan.pod.uid}): ` +
      `a network device can be in one pod at a time, so this pod cannot start with it. Give each pod a claim of its own with a ResourceClaimTemplate; ` +
      `this pod gets the device once ${candidate.plan.pod.name} is gone`;
    logger.warn({ pod: `${pod.namespace}/${pod.name}`, podUID: pod.uid, claim: `${claim.namespace}/${claim.name}`, holder: candidate.plan.pod.uid }, "refusing a pod that shares a claim another pod holds");
    status.event({ apiVersion: "v1", kind: "Pod", namespace: pod.namespace, name: pod.name, uid: pod.uid }, "Warning", SharedClaimReason.InUse, message);
    status.event(
      { apiVersion: "resource.k8s.io/v1", kind: "ResourceClaim", namespace: claim.namespace, name: claim.name, uid: claim.uid },
      "Warning",
      SharedClaimReason.InUse,
      `pod ${pod.namespace}/${pod.name} also consumes this claim and was refused: ${message}`,
    );
    throw new NriHandlerError(StatusCode.FAILED_PRECONDITION, `netclaim refuses pod ${pod.namespace}/${pod.name}: ${message}`);
  }

  /** The holder is gone: once its devices are back on the host, the claim's plan names this pod instead. */
  async #handOver(pod: PodSandboxInfo, candidate: Candidate, signal: AbortSignal): Promise<void> {
    const { claims, attachments, status, logger } = this.#options;
    const { claim } = candidate.plan;
    const from = candidate.plan.pod;
    const journaled = new Set(await attachments());
    if (candidate.keys.some((key) => journaled.has(key))) {
      throw new NriHandlerError(
        StatusCode.UNAVAILABLE,
        `netclaim cannot start pod ${pod.namespace}/${pod.name} yet: claim ${claim.namespace}/${claim.name} was held by pod ${podName(candidate.plan)}, ` +
          "which is gone, and its device is still on its way back to the host (the kubelet retries)",
      );
    }
    const updated = await claims.updatePlan(claim, (stored) => {
      const plan = parseClaimPlan(stored, `claim ${claim.namespace}/${claim.name}`);
      // Another pod took it over meanwhile: leave it, and check again on the kubelet's retry.
      if (plan.pod.uid !== from.uid) return undefined;
      // The stored plan as it is (fields a newer agent wrote included), but for its pod, and
      // without the claims the previous one consumed.
      const kept: Record<string, JsonValue> = { ...(stored as Record<string, JsonValue>) };
      delete kept["podClaims"];
      return { ...kept, pod: { namespace: pod.namespace, name: pod.name, uid: pod.uid } };
    }, { signal });
    if (updated === undefined) {
      throw new NriHandlerError(
        StatusCode.UNAVAILABLE,
        `netclaim cannot start pod ${pod.namespace}/${pod.name} yet: claim ${claim.namespace}/${claim.name} changed hands while it was being handed over (the kubelet retries)`,
      );
    }
    const message = `claim ${claim.namespace}/${claim.name} was held by pod ${podName(candidate.plan)}, which is gone; its devices go to this pod`;
    logger.info({ pod: `${pod.namespace}/${pod.name}`, podUID: pod.uid, claim: `${claim.namespace}/${claim.name}`, from: from.uid }, "handing a shared claim over to the next pod");
    status.event({ apiVersion: "v1", kind: "Pod", namespace: pod.namespace, name: pod.name, uid: pod.uid }, "Normal", SharedClaimReason.HandedOver, message);
  }
}

function podName(plan: ClaimPlan): string {
  return `${plan.pod.namespace}/${plan.pod.name}`;
}
