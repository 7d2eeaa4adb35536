/**
 * Pods, through their status subresource only: the agent reads a pod's
 * metadata there (at prepare, and for the network-status annotation) and
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
