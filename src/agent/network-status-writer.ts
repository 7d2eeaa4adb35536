/**
 * Lists netclaim's native interfaces in their pod's
 * `k8s.v1.cni.cncf.io/network-status` annotation (the AgentConfig opt-in
 * networkStatus.enabled), beside Multus's entries, off the pod's start-up path.
 *
 * When: once the pod's attach has finished. Multus does not merge: at the
 * end of every CNI ADD it replaces the whole annotation with its own list
 * (network-attachment-definition-client's SetNetworkStatus, a pods/status
 * update), and it returns from ADD only after that write. The runtime calls
 * NRI RunPodSandbox, where the attach begins, only after CNI ADD returned,
 * so for a sandbox Multus has always written before netclaim reads. A new
 * sandbox of the pod runs CNI ADD again, and its attach writes again after it.
 *
 * How: read-modify-write with the pod's resourceVersion as a precondition,
 * so a write by anyone between the read and the patch (Multus, the kubelet's
 * status updates, which are frequent while a pod starts) makes the patch
 * fail with 409 Conflict instead of dropping it; the write then starts over
 * from a fresh read, a bounded number of times. An annotation that is not a
 * list of entries is left as it is and logged (network-status.ts), and
 * nothing here ever rejects: a failure is logged and the pod runs on.
 */
import type { Logger } from "pino";
import { setTimeout as sleep } from "node:timers/promises";
import { errorMessage } from "../common/errors.ts";
import { getPodMetadata, isConflict, isNotFound, patchPodAnnotations, type KubeClient } from "../kube/index.ts";
import { mergeNetworkStatus, NETWORK_STATUS_ANNOTATION, networkStatusEntry, type AttachedInterface } from "./network-status.ts";

export interface PodIdentity {
  namespace: string;
  name: string;
  uid: string;
}

export interface NetworkStatusWriterOptions {
  client: KubeClient;
  /** Names our entries (network-status.ts) and is the patches' field manager. */
  driverName: string;
  logger: Logger;
  /** Reads and patches per report before giving up; a conflict and a failed request each count (default 8). */
  maxAttempts?: number;
  /** Wait before retrying a failed request (a conflict re-reads at once); doubles each time (default 200 ms). */
  retryMs?: number;
}

export class NetworkStatusWriter {
  readonly #options: NetworkStatusWriterOptions;
  /** Each pod's writes, one after another so they do not conflict with each other. */
  readonly #writes = new Map<string, Promise<void>>();

  constructor(options: NetworkStatusWriterOptions) {
    this.#options = options;
  }

  /** Adds the pod's attached interfaces to its annotation soon; returns at once. */
  report(pod: PodIdentity, interfaces: readonly AttachedInterface[]): void {
    if (interfaces.length === 0) return;
    const write = (this.#writes.get(pod.uid) ?? Promise.resolve())
      .then(() => this.#write(pod, interfaces))
      .catch((err: unknown) => {
        this.#options.logger.error({ pod: `${pod.namespace}/${pod.name}`, err: errorMessage(err) }, "writing the pod's network-status annotation failed");
      });
    this.#writes.set(pod.uid, write);
    void write.then(() => {
      if (this.#writes.get(pod.uid) === write) this.#writes.delete(pod.uid);
    });
  }

  /** Waits for the writes in progress, at most `timeoutMs`. */
  async close(timeoutMs = 3_000): Promise<void> {
    await Promise.race([Promise.all(this.#writes.values()), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  async #write(pod: PodIdentity, interfaces: readonly AttachedInterface[]): Promise<void> {
    const { client, driverName, maxAttempts = 8, retryMs = 200 } = this.#options;
    const log = this.#options.logger.child({ pod: `${pod.namespace}/${pod.name}`, podUID: pod.uid, interfaces: interfaces.map((i) => i.interfaceName) });
    const ours = interfaces.map((iface) => networkStatusEntry(driverName, iface));
    for (let attempt = 1; ; attempt++) {
      try {
        const current = await getPodMetadata(client, pod.namespace, pod.name);
        // A pod of the same name created since is another pod: these interfaces are not in it.
        if (current.uid !== pod.uid) return;
        const merged = mergeNetworkStatus(current.annotations?.[NETWORK_STATUS_ANNOTATION], ours, driverName);
        if (merged.kind === "malformed") {
          log.warn({ annotation: NETWORK_STATUS_ANNOTATION, reason: merged.reason }, "the pod's network-status annotation is not a list of network status entries; leaving it as it is, without netclaim's interfaces");
          return;
        }
        if (merged.kind === "unchanged") return;
        await patchPodAnnotations(client, { namespace: pod.namespace, name: pod.name, resourceVersion: current.resourceVersion }, { [NETWORK_STATUS_ANNOTATION]: merged.annotation }, driverName);
        log.info({ annotation: NETWORK_STATUS_ANNOTATION, attempts: attempt }, "listed netclaim interfaces in the pod's network-status annotation");
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (attempt >= maxAttempts) {
          log.warn({ annotation: NETWORK_STATUS_ANNOTATION, attempts: attempt, err: errorMessage(err) }, "cannot list netclaim interfaces in the pod's network-status annotation; giving up");
          return;
        }
        // A conflict means the pod changed since the read: read it again at once.
        if (!isConflict(err)) await sleep(Math.min(retryMs * 2 ** (attempt - 1), 5_000));
      }
    }
  }
}
