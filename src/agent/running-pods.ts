/**
 * Which pods a runtime's Synchronize says are running, one sandbox each.
 *
 * containerd lists every sandbox it still holds, stopped ones included: the
 * one a pod's replaced sandbox left behind (NotReady until the kubelet
 * removes it) or a deleted pod's. A stopped sandbox comes with pid 0 and
 * without its network namespace (containerd drops a namespace whose path is
 * gone), next to the live sandbox of the same pod. Keyed by pod UID in
 * listing order, whichever came last won, and a stopped sandbox read like a
 * host-network pod: a late attach then failed with "the pod uses the host
 * network" for a pod that does not.
 *
 * A pod counts as running here when one of its sandboxes has a network
 * namespace. One without any is either not running or on the host's
 * network, and netclaim has nothing to attach to or restore from either.
 */
import type { PodSandboxInfo } from "../nri/index.ts";

export type RunningPod = PodSandboxInfo & { readonly netnsPath: string };

/** The live sandbox of every pod with a network namespace, by pod UID. */
export function runningPods(sandboxes: readonly PodSandboxInfo[]): Map<string, RunningPod> {
  const running = new Map<string, RunningPod>();
  for (const sandbox of sandboxes) {
    if (!hasNetns(sandbox)) continue;
    const seen = running.get(sandbox.uid);
    // Two with a namespace: the kubelet is replacing one; the one whose pause process runs is live.
    if (seen === undefined || (seen.pid === 0 && sandbox.pid !== 0)) running.set(sandbox.uid, sandbox);
  }
  return running;
}

function hasNetns(sandbox: PodSandboxInfo): sandbox is RunningPod {
  return sandbox.netnsPath !== undefined;
}
