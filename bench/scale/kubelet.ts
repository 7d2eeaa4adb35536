/**
 * A kubelet stand-in for the bench's pods on the simulated nodes: what a
 * kubelet and netclaim's agent send to the API server for each pod, and
 * nothing else (no containers, no kubelet plugin gRPC).
 *
 * Pod bound to a node:
 *   kubelet  GET each ResourceClaim of the pod (its DRA manager reads them
 *            before it calls the driver);
 *   agent    GET each claim (prepare reads it: claims/ apiClaimSource), then
 *            one server-side apply of its entries in the claim's status with
 *            the device "attached" (the status reporter coalesces "prepared"
 *            and "attached" of a pod start into one write), as the node's
 *            own identity;
 *   kubelet  PATCH pods/status to Running and Ready.
 * Pod deleted (graceful):
 *   agent    one apply that removes its entries (unprepare);
 *   kubelet  PATCH pods/status terminal, then DELETE with grace 0.
 *
 * A real kubelet also watches its node's pods (one watch per node) and its
 * Node object; those watches and the Node status updates every 5 minutes are
 * left out, and the node's Lease is renewed by fleet.ts.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { claimStatusApplyBody, deviceStatus, type AllocatedDeviceStatus } from "../../src/claims/status.ts";
import { applyResourceClaimStatus, getResourceClaim, type KubeClient, type ResourceClaim, type WatchStream } from "../../src/kube/index.ts";

const DRIVER = "netclaim.dev";
const CONCURRENCY = 32;

interface BenchPod {
  metadata: { name: string; namespace: string; uid: string; resourceVersion?: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status?: { phase?: string; resourceClaimStatuses?: { name: string; resourceClaimName?: string | null }[] | null };
}

interface PodState {
  starting?: Promise<ResourceClaim[]>;
  finishing: boolean;
}

export class KubeletStandIn {
  readonly #admin: KubeClient;
  readonly #labelSelector: string;
  readonly #agentClient: (nodeName: string) => KubeClient;
  readonly #agentClients = new Map<string, KubeClient>();
  readonly #onError: (err: unknown) => void;
  readonly #pods = new Map<string, PodState>();
  readonly #controller = new AbortController();
  #stream: WatchStream | undefined;
  #loop: Promise<void> | undefined;
  #active = 0;
  readonly #waiting: (() => void)[] = [];
  started = 0;
  finished = 0;

  constructor(admin: KubeClient, labelSelector: string, agentClient: (nodeName: string) => KubeClient, onError: (err: unknown) => void) {
    this.#admin = admin;
    this.#labelSelector = labelSelector;
    this.#agentClient = agentClient;
    this.#onError = onError;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#controller.abort();
    this.#stream?.close();
    await this.#loop;
    for (const client of this.#agentClients.values()) client.close();
  }

  async #run(): Promise<void> {
    const signal = this.#controller.signal;
    // A function, not the property: the signal flips while this loop awaits.
    const aborted = (): boolean => signal.aborted;
    let resourceVersion = await this.#resync();
    while (!aborted()) {
      try {
        const stream = await this.#admin.watch(
          "/api/v1/pods",
          { labelSelector: this.#labelSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 3600 },
          signal,
        );
        this.#stream = stream;
        for await (const raw of stream.events()) {
          const event = raw as { type: string; object: BenchPod };
          if (event.type === "ERROR") throw new Error(`pod watch: ${JSON.stringify(event.object)}`);
          resourceVersion = event.object.metadata.resourceVersion ?? resourceVersion;
          if (event.type !== "BOOKMARK") this.#observe(event.type, event.object);
        }
      } catch (err) {
        if (aborted()) return;
        this.#onError(err);
        await sleep(500);
        resourceVersion = await this.#resync().catch(() => resourceVersion);
      }
    }
  }

  /** Every bench pod as it is now; returns the list's resourceVersion. */
  async #resync(): Promise<string> {
    const list = await this.#admin.request<{ metadata: { resourceVersion: string }; items: BenchPod[] }>("GET", "/api/v1/pods", {
      query: { labelSelector: this.#labelSelector },
    });
    for (const pod of list.items) this.#observe("MODIFIED", pod);
    return list.metadata.resourceVersion;
  }

  #observe(type: string, pod: BenchPod): void {
    const uid = pod.metadata.uid;
    if (type === "DELETED") {
      this.#pods.delete(uid);
      return;
    }
    let state = this.#pods.get(uid);
    if (state === undefined) this.#pods.set(uid, (state = { finishing: false }));
    const nodeName = pod.spec.nodeName;
    if (nodeName === undefined || nodeName === "") return;
    if (state.starting === undefined && pod.metadata.deletionTimestamp === undefined) {
      state.starting = this.#limited(() => this.#startPod(pod, nodeName));
      state.starting.catch(this.#onError);
    }
    if (pod.metadata.deletionTimestamp !== undefined && !state.finishing) {
      state.finishing = true;
      const starting = state.starting ?? Promise.resolve([]);
      this.#limited(async () => this.#finishPod(pod, nodeName, await starting.catch(() => []))).catch(this.#onError);
    }
  }

  async #startPod(pod: BenchPod, nodeName: string): Promise<ResourceClaim[]> {
    const { namespace, name } = pod.metadata;
    const claimNames = (pod.status?.resourceClaimStatuses ?? []).flatMap((s) => (s.resourceClaimName ? [s.resourceClaimName] : []));
    const ours: ResourceClaim[] = [];
    for (const claimName of claimNames) {
      await this.#admin.request("GET", `/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaims/${claimName}`);
      const agent = this.#agent(nodeName);
      const claim = await getResourceClaim(agent, namespace, claimName);
      const devices = ourDevices(claim, nodeName);
      if (devices.length === 0) continue;
      const now = new Date();
      const statuses = devices.map((device, i) =>
        deviceStatus({ driver: DRIVER, pool: nodeName, device }, { kind: "attached", interfaceName: `net${i + 1}`, addresses: [], late: false }, { now }),
      );
      await applyResourceClaimStatus(agent, claimStatusApplyBody(claim.metadata, statuses), DRIVER);
      ours.push(claim);
    }
    const now = new Date().toISOString();
    await this.#patchStatus(namespace, name, {
      phase: "Running",
      startTime: now,
      conditions: ["Initialized", "ContainersReady", "Ready"].map((type) => ({ type, status: "True", lastTransitionTime: now })),
      containerStatuses: [{ name: "c", image: "registry.invalid/pause:bench", imageID: "", ready: true, restartCount: 0, started: true, state: { running: { startedAt: now } } }],
    });
    this.started++;
    return ours;
  }

  /** What the kubelet writes of a pod's phase, conditions and containers (a strategic merge patch of its status). */
  async #patchStatus(namespace: string, name: string, status: Record<string, unknown>): Promise<void> {
    await this.#admin.request("PATCH", `/api/v1/namespaces/${namespace}/pods/${name}/status`, { contentType: "application/strategic-merge-patch+json", body: { status } });
  }

  async #finishPod(pod: BenchPod, nodeName: string, claims: readonly ResourceClaim[]): Promise<void> {
    const { namespace, name, uid } = pod.metadata;
    const agent = claims.length > 0 ? this.#agent(nodeName) : undefined;
    for (const claim of claims) {
      const none: AllocatedDeviceStatus[] = [];
      if (agent !== undefined) await applyResourceClaimStatus(agent, claimStatusApplyBody(claim.metadata, none), DRIVER);
    }
    const now = new Date().toISOString();
    await this.#patchStatus(namespace, name, {
      phase: "Succeeded",
      conditions: ["ContainersReady", "Ready"].map((type) => ({ type, status: "False", reason: "PodCompleted", lastTransitionTime: now })),
      containerStatuses: [{ name: "c", image: "registry.invalid/pause:bench", imageID: "", ready: false, restartCount: 0, started: false, state: { terminated: { exitCode: 0, reason: "Completed", finishedAt: now } } }],
    });
    await this.#admin.request("DELETE", `/api/v1/namespaces/${namespace}/pods/${name}`, {
      body: { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0, preconditions: { uid } },
    });
    this.finished++;
  }

  #agent(nodeName: string): KubeClient {
    let client = this.#agentClients.get(nodeName);
    if (client === undefined) this.#agentClients.set(nodeName, (client = this.#agentClient(nodeName)));
    return client;
  }

  /** At most CONCURRENCY pod operations at once: the stand-in serves every node from one process. */
  async #limited<T>(task: () => Promise<T>): Promise<T> {
    while (this.#active >= CONCURRENCY) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#active++;
    try {
      return await task();
    } finally {
      this.#active--;
      this.#waiting.shift()?.();
    }
  }
}

/** The devices of netclaim's pool on this node that the claim was allocated. */
function ourDevices(claim: ResourceClaim, nodeName: string): string[] {
  return (claim.status?.allocation?.devices?.results ?? []).filter((r) => r.driver === DRIVER && r.pool === nodeName).map((r) => r.device);
}
