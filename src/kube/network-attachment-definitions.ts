/**
 * NetworkAttachmentDefinitions (Multus's CRD), read when a claim's config
 * names one for its IPAM; validated here, at the boundary, so an unexpected
 * object is an error naming the field.
 */
import { z } from "zod";
import type { KubeClient } from "./client.ts";
import { KubeApiError } from "./errors.ts";

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
  const object = await client.request<unknown>("GET", path, signal ? { signal } : {});
  const parsed = nadSchema.safeParse(object);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KubeApiError("KUBE_DECODE", {
      method: "GET",
      path,
      status: 0,
      reason: "",
      message: `unexpected NetworkAttachmentDefinition: ${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`,
    });
  }
  return parsed.data;
}
