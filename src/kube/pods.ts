/**
 * Pods, through their status subresource only: the agent reads a pod's
 * metadata there (at prepare, and for the network-status annotation), the
 * claims it consumes (when a claim another pod holds could be among them), and
 * writes annotations there, as Multus does, so its RBAC is pods/status and
 * never pods (whose spec a patch could change). The
 * metadata read is validated here, at the boundary.
 */
import { z } from "zod";
import type { KubeClient } from "./client.ts";
import { decodeObject } from "./errors.ts";

const podMetadataSchema = z.object({
  metadata: z.object({
    name: z.string().min(1),
    namespace: z.string().min(1),
    uid: z.string().min(1),
    resourceVersion: z.string().min(1),
    annotations: z.record(z.string(), z.string()).nullish(),
  }),
});

export type PodMetadata = z.infer<typeof podMetadataSchema>["metadata"];

function podStatusPath(namespace: string, name: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}/status`;
}

export async function getPodMetadata(client: KubeClient, namespace: string, name: string, signal?: AbortSignal): Promise<PodMetadata> {
  const path = podStatusPath(namespace, name);
  return decodeObject(podMetadataSchema, await client.request<unknown>("GET", path, signal ? { signal } : {}), "Pod", path).metadata;
}

const podClaimsSchema = podMetadataSchema.extend({
  spec: z.object({ resourceClaims: z.array(z.object({ name: z.string(), resourceClaimName: z.string().nullish() })).nullish() }).nullish(),
  status: z.object({ resourceClaimStatuses: z.array(z.object({ name: z.string(), resourceClaimName: z.string().nullish() })).nullish() }).nullish(),
});

/**
 * The pod's metadata and the names of the ResourceClaims it consumes, from one read: those
 * its spec names, and those the control plane made for it from templates (as its status
 * lists them, which it does before the pod can be scheduled).
 */
export async function getPodWithClaims(client: KubeClient, namespace: string, name: string, signal?: AbortSignal): Promise<PodMetadata & { claims: string[] }> {
  const path = podStatusPath(namespace, name);
  const pod = decodeObject(podClaimsSchema, await client.request<unknown>("GET", path, signal ? { signal } : {}), "Pod", path);
  const named = (pod.spec?.resourceClaims ?? []).flatMap((c) => (c.resourceClaimName ? [c.resourceClaimName] : []));
  const generated = (pod.status?.resourceClaimStatuses ?? []).flatMap((c) => (c.resourceClaimName ? [c.resourceClaimName] : []));
  return { ...pod.metadata, claims: [...named, ...generated] };
}

/**
 * Sets annotations of the pod as it was at `resourceVersion` (a JSON merge
 * patch carrying it is a precondition): 409 Conflict when anyone wrote the
 * pod since, so a read-modify-write never drops another writer's change.
 */
export async function patchPodAnnotations(
  client: KubeClient,
  pod: { namespace: string; name: string; resourceVersion: string },
  annotations: Readonly<Record<string, string>>,
  fieldManager: string,
  signal?: AbortSignal,
): Promise<void> {
  await client.request("PATCH", podStatusPath(pod.namespace, pod.name), {
    body: { metadata: { resourceVersion: pod.resourceVersion, annotations } },
    contentType: "application/merge-patch+json",
    query: { fieldManager },
    ...(signal ? { signal } : {}),
  });
}
