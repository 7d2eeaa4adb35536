/**
 * Fakes for PodNetwork's unit tests: pods as NRI describes them, claim plans
 * as prepare stores them, and an engine that journals by key and lets a test
 * decide when (and whether) an attach's kernel work ends.
 */
import type { ClaimPlan } from "../../claims/plan.ts";
import { EngineError, type Attacher, type AttachmentPlanInput, type AttachResult, type DetachOutcome, type RecoveryResult } from "../../engine/index.ts";
import type { BatchRunner, Link } from "../../netlink/index.ts";
import type { PodSandboxInfo } from "../../nri/index.ts";

export function pod(name: string, options: { namespace?: string; annotations?: Record<string, string> } = {}): PodSandboxInfo {
  return {
    id: `sandbox-${name}`,
    uid: `uid-${name}`,
    name,
    namespace: options.namespace ?? "team-a",
    netnsPath: `/var/run/netns/cni-${name}`,
    ips: [],
    labels: {},
    annotations: { "kubernetes.io/config.source": "api", ...options.annotations },
    pid: 0,
  };
}

export function singleDevicePlan(claim: { namespace: string; name: string; uid: string }, holder: PodSandboxInfo, device: string): ClaimPlan {
  return {
    version: 1,
    claim,
    pod: { namespace: holder.namespace, name: holder.name, uid: holder.uid },
    devices: [
      {
        request: "nic",
        pool: "worker-1",
        device,
        mode: "native",
        identity: { name: device, ifindex: 7 },
        interface: { name: "data0", addresses: ["198.51.100.7/24"], sysctls: {} },
        routes: [],
        cdiDeviceIds: [],
      },
    ],
  };
}

/** A link in a pod's namespace, with only what naming looks at. */
export function podLink(name: string, index: number): Link {
  return { name, index } as Link;
}

/** The links of every pod's namespace: lo and eth0. */
export const POD_LINKS: readonly Link[] = [podLink("lo", 1), podLink("eth0", 2)];

/**
 * The engine's side: attachments journaled by key, begun into a namespace, restored by detach.
 * Each attach's kernel work ends when `kernelWork` settles (at once unless a test says otherwise);
 * a failed one is rolled back. Its check refuses a pod-side name `podLinks` has, as the engine's does.
 */
export class FakeEngine implements Attacher {
  readonly journal = new Map<string, string>();
  readonly begun: AttachmentPlanInput[][] = [];
  /** How many times begin was told the pod's links (read by the caller) rather than reading them itself. */
  toldPodLinks = 0;
  attachedAsked = 0;
  podLinks: readonly Link[] = POD_LINKS;
  kernelWork: () => Promise<void> = () => Promise.resolve();
  /** The check before the journal write ends when this settles (at once unless a test says otherwise). */
  checkWork: () => Promise<void> = () => Promise.resolve();

  async begin(inputs: readonly AttachmentPlanInput[], options: { podLinks?: readonly Link[] } = {}): Promise<{ done: Promise<AttachResult[]> }> {
    this.begun.push([...inputs]);
    if (options.podLinks !== undefined) this.toldPodLinks++;
    await this.checkWork();
    const links = options.podLinks ?? this.podLinks;
    const taken = inputs.find((i) => links.some((l) => l.name === i.podName));
    if (taken !== undefined) {
      const where = { attachment: taken.key, device: taken.device.name ?? "", step: "check-names" };
      throw new EngineError("ENGINE_NAME_COLLISION", where, `pod ${taken.netns} already has an interface named ${taken.podName}`);
    }
    for (const input of inputs) this.journal.set(input.key, input.netns);
    const results = inputs.map((i) => ({ key: i.key, podName: i.podName, ifindex: 7, mac: undefined, addresses: [...(i.addresses ?? [])] }));
    // A failed attach is rolled back, as the engine does: its keys leave the journal.
    const done = this.kernelWork().then(
      () => results,
      (err: unknown) => {
        for (const input of inputs) this.journal.delete(input.key);
        throw err;
      },
    );
    return { done };
  }
  attach(): Promise<AttachResult[]> {
    return Promise.reject(new Error("not used"));
  }
  detach(keys: readonly string[]): Promise<Map<string, DetachOutcome>> {
    for (const key of keys) this.journal.delete(key);
    return Promise.resolve(new Map(keys.map((key) => [key, "restored" as const])));
  }
  recover(): Promise<Map<string, RecoveryResult>> {
    return Promise.resolve(new Map<string, RecoveryResult>());
  }
  retarget(): Promise<Map<string, RecoveryResult>> {
    return Promise.resolve(new Map<string, RecoveryResult>());
  }
  attachments(): Promise<string[]> {
    return Promise.resolve([...this.journal.keys()]);
  }
  attached(keys?: readonly string[]): Promise<string[]> {
    this.attachedAsked++;
    return Promise.resolve([...this.journal.keys()].filter((key) => keys?.includes(key) ?? true));
  }
}

/** A netlink runner that answers a listing of the pod's links with the engine's `podLinks`. */
export function podLinksOf(engine: FakeEngine): BatchRunner {
  return {
    batch: (() => Promise.resolve([engine.podLinks])) as unknown as BatchRunner["batch"],
    batchAcross: () => Promise.reject(new Error("not used")),
  };
}

