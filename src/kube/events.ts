/**
 * core/v1 Events on the objects a user looks at (the pod, the claim), so
 * `kubectl describe` on either says what netclaim did or what to fix.
 */
import type { KubeClient } from "./client.ts";

export interface EventTarget {
  apiVersion: string;
  kind: "Pod" | "ResourceClaim";
  namespace: string;
  name: string;
  uid: string;
}

/** A core/v1 Event, as `kubectl describe` shows them. */
export async function createEvent(
  client: KubeClient,
  event: { target: EventTarget; type: "Normal" | "Warning"; reason: string; message: string; component: string; host?: string },
  signal?: AbortSignal,
): Promise<void> {
  const now = new Date().toISOString();
  await client.request("POST", `/api/v1/namespaces/${encodeURIComponent(event.target.namespace)}/events`, {
    body: {
      apiVersion: "v1",
      kind: "Event",
      metadata: { generateName: `${event.target.name}.`, namespace: event.target.namespace },
      involvedObject: {
        apiVersion: event.target.apiVersion,
        kind: event.target.kind,
        namespace: event.target.namespace,
        name: event.target.name,
        uid: event.target.uid,
      },
      type: event.type,
      reason: event.reason,
      message: event.message.slice(0, 1024),
      source: { component: event.component, ...(event.host !== undefined ? { host: event.host } : {}) },
      reportingComponent: event.component,
      reportingInstance: event.host ?? event.component,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    },
    ...(signal ? { signal } : {}),
  });
}
