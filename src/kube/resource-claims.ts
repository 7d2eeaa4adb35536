/**
 * ResourceClaims, as claim handling reads them (get, validated here at the
 * boundary so the rest of the agent works with shapes it can trust and an
 * unexpected object is an error naming the field) and writes their status
 * (server-side apply).
 */
import { z } from "zod";
import type { KubeClient } from "./client.ts";
import { decodeObject } from "./errors.ts";

const RESOURCE_CLAIMS = "/apis/resource.k8s.io/v1/namespaces";

const allocationResult = z.object({
  request: z.string().min(1),
  driver: z.string().min(1),
  pool: z.string().min(1),
  device: z.string().min(1),
  shareID: z.string().optional(),
  adminAccess: z.boolean().nullish(),
});

const allocationConfig = z.object({
  source: z.enum(["FromClass", "FromClaim"]),
  requests: z.array(z.string()).nullish(),
  opaque: z.object({ driver: z.string(), parameters: z.unknown() }).nullish(),
});

const consumer = z.object({
  apiGroup: z.string().nullish(),
  resource: z.string(),
  name: z.string(),
  uid: z.string(),
});

const condition = z.object({
  type: z.string(),
  status: z.enum(["True", "False", "Unknown"]),
  reason: z.string(),
  message: z.string(),
  lastTransitionTime: z.string(),
  observedGeneration: z.number().optional(),
});

const deviceStatus = z.object({
  driver: z.string(),
  pool: z.string(),
  device: z.string(),
  shareID: z.string().optional(),
  conditions: z.array(condition).nullish(),
  networkData: z
    .object({ interfaceName: z.string().optional(), ips: z.array(z.string()).optional(), hardwareAddress: z.string().optional() })
    .nullish(),
});

export const resourceClaimSchema = z.object({
  metadata: z.object({
    name: z.string().min(1),
    namespace: z.string().min(1),
    uid: z.string().min(1),
    generation: z.number().optional(),
    annotations: z.record(z.string(), z.string()).nullish(),
  }),
  status: z
    .object({
      allocation: z
        .object({
          devices: z
            .object({
              results: z.array(allocationResult).nullish(),
              config: z.array(allocationConfig).nullish(),
            })
            .nullish(),
        })
        .nullish(),
      reservedFor: z.array(consumer).nullish(),
      devices: z.array(deviceStatus).nullish(),
    })
    .nullish(),
});

export type ResourceClaim = z.infer<typeof resourceClaimSchema>;
export type ClaimDeviceStatus = z.infer<typeof deviceStatus>;

function claimPath(namespace: string, name: string): string {
  return `${RESOURCE_CLAIMS}/${encodeURIComponent(namespace)}/resourceclaims/${encodeURIComponent(name)}`;
}

export function parseResourceClaim(object: unknown, where: string): ResourceClaim {
  return decodeObject(resourceClaimSchema, object, "ResourceClaim", where);
}

export async function getResourceClaim(client: KubeClient, namespace: string, name: string, signal?: AbortSignal): Promise<ResourceClaim> {
  const path = claimPath(namespace, name);
  return parseResourceClaim(await client.request<unknown>("GET", path, signal ? { signal } : {}), path);
}

/**
 * Server-side apply on `resourceclaims/status` as `fieldManager`: the
 * `status.devices` entries in `body` become exactly the ones this manager owns.
 */
export async function applyResourceClaimStatus(
  client: KubeClient,
  body: { metadata: { namespace: string; name: string } },
  fieldManager: string,
  signal?: AbortSignal,
): Promise<void> {
  await client.request("PATCH", `${claimPath(body.metadata.namespace, body.metadata.name)}/status`, {
    body,
    contentType: "application/apply-patch+yaml",
    query: { fieldManager, force: true },
    ...(signal ? { signal } : {}),
  });
}
