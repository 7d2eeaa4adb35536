/**
 * The simulated nodes of make bench-scale, in a process of their own (forked
 * by scale.bench.ts, driven over IPC) so that their work does not delay the
 * bench's own clocks:
 *
 *   - one netclaim SlicePublisher per node, each with its own KubeClient and
 *     its own identity (a ServiceAccount token bound to a pod on its node, as
 *     the kubelet mounts it), so the admission policy on slices applies and
 *     the API server sees 1000 agents: 1000 connections, 1000 watches;
 *   - the node's Lease renewed, as the kubelet does, so the node lifecycle
 *     controller keeps the nodes Ready for the whole run;
 *   - a kubelet stand-in for the bench's pods, with the requests netclaim's
 *     agent makes per claim (kubelet.ts).
 *
 * Publishers of one hardware shape share one Inventory: it scans the same
 * tree and hands the same snapshot to each, so every publisher plans and
 * writes exactly what its own agent would. Its periodic resync is stretched
 * past the run: a resync that finds nothing new sends nothing, and 1000 of
 * them would only load this machine's two cores.
 */
import { Inventory, devicePolicySchema } from "../../src/inventory/index.ts";
import type { KubeClient } from "../../src/kube/index.ts";
import { SlicePublisher } from "../../src/slices/index.ts";
import { agentToken, cluster, tokenClient } from "../../test/api/harness.ts";
import { KubeletStandIn } from "./kubelet.ts";
import { forEachLimit, microTime } from "./util.ts";

export interface FleetNode {
  name: string;
  root: string;
}

export type ToFleet =
  | { type: "identify"; nodes: FleetNode[]; leaseRenewSeconds: number; podLabel: string }
  | { type: "publish" }
  | { type: "counters" }
  | { type: "stop" };

export interface PublisherCounters {
  total: number;
  writes: number;
  byVerb: Record<string, number>;
}

export type FromFleet =
  | { type: "identified"; ms: number; errors: string[] }
  | { type: "published"; ms: number; errors: string[] }
  | { type: "counters"; publishers: PublisherCounters; podsStarted: number; podsFinished: number; errors: string[]; leaseRenewals: number }
  | { type: "stopped" };

const send = (message: FromFleet): void => {
  process.send?.(message);
};

const c = await cluster();
const errors: string[] = [];
const publishers: { publisher: SlicePublisher; client: KubeClient }[] = [];
const inventories = new Map<string, Inventory>();
let kubelet: KubeletStandIn | undefined;
let leaseTimer: NodeJS.Timeout | undefined;
let leaseRenewals = 0;

const noteError = (err: unknown): void => {
  if (errors.length < 20) errors.push(err instanceof Error ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ""}` : String(err));
};

let nodes: readonly FleetNode[] = [];
const tokens = new Map<string, string>();

/** Per node: a pod bound to it and a token bound to that pod; then the Leases and the kubelet stand-in start. */
async function identify(leaseRenewSeconds: number, podLabel: string): Promise<void> {
  const started = performance.now();
  await forEachLimit(nodes, 16, async (node) => {
    tokens.set(node.name, await agentToken(c, node.name));
  });
  renewLeases(nodes.map((n) => n.name), leaseRenewSeconds);
  kubelet = new KubeletStandIn(c.admin, podLabel, (nodeName) => tokenClient(c, tokens.get(nodeName) ?? ""), noteError);
  kubelet.start();
  send({ type: "identified", ms: performance.now() - started, errors });
}

async function publish(): Promise<void> {
  for (const root of new Set(nodes.map((n) => n.root))) {
    const inventory = new Inventory({ root, policy: devicePolicySchema.parse(undefined), resyncMs: 24 * 3_600_000, onError: noteError });
    await inventory.start();
    inventories.set(root, inventory);
  }
  const started = performance.now();
  await forEachLimit(nodes, 16, async (node) => {
    const client = tokenClient(c, tokens.get(node.name) ?? "");
    const publisher = new SlicePublisher({ client, driverName: "netclaim.dev", nodeName: node.name, devices: inventories.get(node.root)!, onError: noteError });
    publishers.push({ publisher, client });
    await publisher.start();
  });
  send({ type: "published", ms: performance.now() - started, errors });
}

/**
 * Each node's Lease, renewed once it is a period old. Due renewals are found
 * by time, not by counting timer ticks: a tick delayed by a busy event loop
 * (publication, a burst of pods) must not stretch the period past the node
 * lifecycle controller's grace period and mark nodes NotReady mid-run.
 */
function renewLeases(names: readonly string[], periodSeconds: number): void {
  const renewedAt = new Map(names.map((name) => [name, Date.now()]));
  let inFlight = 0;
  const renew = async (name: string): Promise<void> => {
    await c.admin.request("PATCH", `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`, {
      body: { spec: { renewTime: microTime(new Date()) } },
      contentType: "application/merge-patch+json",
    });
    leaseRenewals++;
  };
  leaseTimer = setInterval(() => {
    const due = Date.now() - periodSeconds * 1000;
    for (const [name, at] of renewedAt) {
      if (inFlight >= 16) break;
      if (at > due) continue;
      renewedAt.set(name, Date.now());
      inFlight++;
      renew(name)
        .catch(noteError)
        .finally(() => inFlight--);
    }
  }, 100);
}

function counters(): PublisherCounters {
  const byVerb: Record<string, number> = {};
  let total = 0;
  let writes = 0;
  for (const { client } of publishers) {
    total += client.counter.total();
    writes += client.counter.writes();
    for (const verb of ["GET", "POST", "PUT", "PATCH", "DELETE"]) byVerb[verb] = (byVerb[verb] ?? 0) + client.counter.get(verb);
  }
  return { total, writes, byVerb };
}

async function stop(): Promise<void> {
  clearInterval(leaseTimer);
  await kubelet?.stop();
  await forEachLimit(publishers, 32, async ({ publisher, client }) => {
    await publisher.stop();
    client.close();
  });
  for (const inventory of inventories.values()) await inventory.stop();
  c.admin.close();
}

process.on("message", (message: ToFleet) => {
  switch (message.type) {
    case "identify":
      nodes = message.nodes;
      identify(message.leaseRenewSeconds, message.podLabel).catch((err: unknown) => {
        noteError(err);
        send({ type: "identified", ms: Number.NaN, errors });
      });
      break;
    case "publish":
      publish().catch((err: unknown) => {
        noteError(err);
        send({ type: "published", ms: Number.NaN, errors });
      });
      break;
    case "counters":
      send({ type: "counters", publishers: counters(), podsStarted: kubelet?.started ?? 0, podsFinished: kubelet?.finished ?? 0, errors, leaseRenewals });
      break;
    case "stop":
      stop()
        .catch(noteError)
        .finally(() => {
          send({ type: "stopped" });
          process.disconnect();
        });
      break;
  }
});
