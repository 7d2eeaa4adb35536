/**
 * What the agent's ServiceAccount may do (the shipped ClusterRole) against
 * what it did (the API server's audit log of its requests), as sets of
 * "group resource[/subresource] verb" permissions.
 */
import { readFile } from "node:fs/promises";
import { parseAllDocuments } from "yaml";
import { z } from "zod";

export const AGENT_USER = "system:serviceaccount:netclaim:netclaim-agent";

const ruleSchema = z.object({
  apiGroups: z.array(z.string()),
  resources: z.array(z.string()),
  verbs: z.array(z.string()),
  resourceNames: z.array(z.string()).optional(),
});

const clusterRoleSchema = z.object({ kind: z.literal("ClusterRole"), rules: z.array(ruleSchema) });

const auditEventSchema = z.object({
  user: z.object({ username: z.string() }),
  verb: z.string(),
  requestURI: z.string(),
  requestReceivedTimestamp: z.string(),
  objectRef: z.object({ apiGroup: z.string().optional(), resource: z.string().optional(), subresource: z.string().optional() }).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  responseStatus: z.object({ code: z.number().optional() }).optional(),
});

export type Permission = string;

const SELF_REVIEWS = new Set(["authorization.k8s.io selfsubjectaccessreviews", "authentication.k8s.io selfsubjectreviews"]);

export function permission(apiGroup: string, resource: string, verb: string): Permission {
  return `${apiGroup === "" ? "core" : apiGroup} ${resource} ${verb}`;
}

/** Every permission the ClusterRole in `manifest` grants (resourceNames aside). */
export function grantedPermissions(manifest: string): Set<Permission> {
  const granted = new Set<Permission>();
  for (const doc of parseAllDocuments(manifest)) {
    const role = clusterRoleSchema.safeParse(doc.toJS());
    if (!role.success) continue;
    for (const rule of role.data.rules) {
      for (const group of rule.apiGroups) for (const resource of rule.resources) for (const verb of rule.verbs) granted.add(permission(group, resource, verb));
    }
  }
  return granted;
}

export interface AgentRequests {
  /** What the agent's requests needed from RBAC. */
  used: Set<Permission>;
  /** Requests RBAC refused (the audit annotation authorization.k8s.io/decision = forbid). */
  refused: Set<Permission>;
  count: number;
}

/**
 * The permissions behind the agent's requests in audit logs (JSON lines),
 * from `since` on. A write of claim status also needs, from Kubernetes 1.36,
 * `associated-node:<verb>` on the synthetic resourceclaims/driver, which the
 * API server checks without a request of its own, so it counts as used too.
 */
export async function agentRequests(logs: readonly string[], since: Date): Promise<AgentRequests> {
  const used = new Set<Permission>();
  const refused = new Set<Permission>();
  let count = 0;
  for (const log of logs) {
    const text = await readFile(log, "utf8").catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
      throw err;
    });
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const event = auditEventSchema.parse(JSON.parse(line));
      if (event.user.username !== AGENT_USER || event.objectRef?.resource === undefined) continue;
      if (new Date(event.requestReceivedTimestamp) < since) continue;
      // The test harness's dry runs (probes that admission policies are loaded) are not the agent's.
      if (new URLSearchParams(event.requestURI.split("?")[1] ?? "").has("dryRun")) continue;
      // `netclaim doctor` in the agent's pod asks what its credentials may do: self reviews need no
      // rule of the agent's, every authenticated user may create them (system:basic-user).
      if (SELF_REVIEWS.has(`${event.objectRef.apiGroup ?? ""} ${event.objectRef.resource}`)) continue;
      count++;
      const { apiGroup = "", resource, subresource } = event.objectRef;
      const needed = [permission(apiGroup, subresource === undefined ? resource : `${resource}/${subresource}`, event.verb)];
      if (resource === "resourceclaims" && subresource === "status") needed.push(permission(apiGroup, "resourceclaims/driver", `associated-node:${event.verb}`));
      for (const p of needed) used.add(p);
      if (event.annotations?.["authorization.k8s.io/decision"] === "forbid") refused.add(needed[0] ?? "");
    }
  }
  return { used, refused, count };
}

export interface RbacDifference {
  /** Used but not granted: the agent fails without it. */
  missing: Permission[];
  /** Granted but never used: more privilege than the agent needs. */
  unused: Permission[];
}

export function compare(granted: ReadonlySet<Permission>, used: ReadonlySet<Permission>): RbacDifference {
  return {
    missing: [...used].filter((p) => !granted.has(p)).sort(),
    unused: [...granted].filter((p) => !used.has(p)).sort(),
  };
}
