/**
 * NetworkAttachmentDefinitions (Multus's CRD), read when a claim's config
 * names one for its IPAM; validated here, at the boundary, so an unexpected
 * object is an error naming the field.
 */
import { z } from "zod";
import type { KubeClient } from "./client.ts";
import { decodeObject } from "./errors.ts";

const nadSchema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string(), annotations: z.record(z.string(), z.string()).nullish() }),
  spec: z.object({ config: z.string().min(1) }),
});

export type NetworkAttachmentDefinition = z.infer<typeof nadSchema>;

export async function getNetworkAttachmentDefinition(
  client: KubeClient,
  namespace: string,
  name: string,
  signal?: AbortSignal,
): Promise<NetworkAttachmentDefinition> {
  const path = `/apis/k8s.cni.cncf.io/v1/namespaces/${encodeURIComponent(namespace)}/network-attachment-definitions/${encodeURIComponent(name)}`;
  return decodeObject(nadSchema, await client.request<unknown>("GET", path, signal ? { signal } : {}), "NetworkAttachmentDefinition", path);
}
