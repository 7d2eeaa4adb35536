/**
 * Typed calls for the objects the slice publisher touches. Paths are the
 * resource.k8s.io/v1 ones (Kubernetes 1.34+).
 */
import { z } from "zod";
import { decodeObject } from "./errors.ts";
import type { KubeClient } from "./client.ts";
import type { Node, ResourceSlice } from "./types.ts";

export const RESOURCE_SLICES_PATH = "/apis/resource.k8s.io/v1/resourceslices";

/** The field selector that limits a node agent to its own slices. */
export function ownSlicesFieldSelector(nodeName: string, driverName: string): string {
  return `spec.nodeName=${nodeName},spec.driver=${driverName}`;
}

/** The API server's release, from /version. */
export interface ServerVersion {
  major: number;
  minor: number;
  /** As the server says it ("v1.37.2", "v1.34.4+rhcos"). */
  gitVersion: string;
}

/** "37", or "37+" as distributions write it. */
const releaseNumber = z.string().regex(/^\d+\+?$/, { error: "must be a release number" }).transform((v) => Number.parseInt(v, 10));
const versionSchema = z.object({ major: releaseNumber, minor: releaseNumber, gitVersion: z.string() });

/** Reads the API server's release. */
export async function getServerVersion(client: KubeClient): Promise<ServerVersion> {
  return decodeObject(versionSchema, await client.request<unknown>("GET", "/version"), "version", "/version");
}

export async function getNode(client: KubeClient, name: string): Promise<Node> {
  return client.request<Node>("GET", `/api/v1/nodes/${encodeURIComponent(name)}`);
}

/** The slices `fieldSelector` selects, as the server has them now. */
export async function listResourceSlices(client: KubeClient, fieldSelector: string): Promise<ResourceSlice[]> {
  return (await client.request<{ items: ResourceSlice[] }>("GET", RESOURCE_SLICES_PATH, { query: { fieldSelector } })).items;
}

export async function createResourceSlice(client: KubeClient, slice: ResourceSlice, fieldManager: string): Promise<ResourceSlice> {
  return client.request<ResourceSlice>("POST", RESOURCE_SLICES_PATH, { body: slice, query: { fieldManager } });
}

/** Replaces a slice; `slice.metadata.resourceVersion` makes it fail with 409 if someone else wrote first. */
export async function replaceResourceSlice(client: KubeClient, slice: ResourceSlice, fieldManager: string): Promise<ResourceSlice> {
  const name = slice.metadata.name ?? "";
  return client.request<ResourceSlice>("PUT", `${RESOURCE_SLICES_PATH}/${encodeURIComponent(name)}`, { body: slice, query: { fieldManager } });
}

/** Deletes a slice only if it is still at `resourceVersion`. */
export async function deleteResourceSlice(client: KubeClient, name: string, resourceVersion: string | undefined): Promise<void> {
  await client.request("DELETE", `${RESOURCE_SLICES_PATH}/${encodeURIComponent(name)}`, {
    body: {
      apiVersion: "v1",
      kind: "DeleteOptions",
      ...(resourceVersion !== undefined ? { preconditions: { resourceVersion } } : {}),
    },
  });
}
