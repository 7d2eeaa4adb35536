/**
 * What a NetworkAttachmentDefinition may make an IPAM plugin do. Its author
 * is a tenant (any namespace admin); the plugin runs as root with the agent's
 * filesystem and network. So, before anything runs:
 *
 * - its type must be one the node's administrator allowed (pool allocators,
 *   never plugins that configure links, rules or sysctls, such as bridge,
 *   tuning or portmap);
 * - no string anywhere in the configuration handed to it may name a host
 *   path outside the prefixes the administrator allowed (host-local's
 *   dataDir and resolvConf, whereabouts' log_file, kubeconfig and
 *   configuration_path, ...), nor climb with "..": plugins run in a working
 *   directory of netclaim's own, so a relative path stays inside it.
 *
 * The same checks run before a release (CNI DEL), since a journaled lease
 * may come from an agent with a wider policy.
 */
import { posix } from "node:path";
import { CniError } from "./errors.ts";

export interface IpamPolicy {
  /** IPAM plugin types that may run (AgentConfig cni.ipam.allowedTypes). */
  allowedTypes: readonly string[];
  /** Absolute path prefixes, each ending in "/" (cni.ipam.allowedPathPrefixes). */
  allowedPathPrefixes: readonly string[];
  /** Whether a claim may name a NetworkAttachmentDefinition of another namespace (cni.ipam.allowCrossNamespace). */
  allowCrossNamespace: boolean;
}

/** IPAM plugin types that cannot work for netclaim whatever the policy says, and why. */
export const UNWORKABLE_IPAM_TYPES: Readonly<Record<string, string>> = {
  dhcp:
    "the dhcp plugin's daemon runs a DHCP client on the interface inside CNI_NETNS, but netclaim allocates " +
    "at prepare time, before the pod's namespace exists, so no such interface exists anywhere to ask on; use " +
    "host-local, whereabouts or static addresses",
};

/** Deeper configurations are refused: real IPAM configurations nest about five levels. */
export const MAX_IPAM_CONFIG_DEPTH = 32;

/**
 * Throws CNI_NOT_ALLOWED unless `type` may run. `subject` names whose
 * configuration it is ("NetworkAttachmentDefinition ns/name"), `field` where
 * the type is written in it.
 */
export function checkIpamType(type: string, policy: IpamPolicy, subject: string, field: string): void {
  if (policy.allowedTypes.includes(type)) return;
  const unworkable = Object.hasOwn(UNWORKABLE_IPAM_TYPES, type) ? UNWORKABLE_IPAM_TYPES[type] : undefined;
  const remedy =
    unworkable === undefined
      ? `a node administrator can allow it in cni.ipam.allowedTypes of the agent configuration (allowed now: ${policy.allowedTypes.join(", ") || "none"})`
      : `it cannot be allowed: ${unworkable}`;
  throw new CniError("CNI_NOT_ALLOWED", type, `Cannot use ${subject} for IPAM: ${field} is ${quote(type)}, which is not an allowed IPAM plugin type; ${remedy}`);
}

/**
 * Throws CNI_NOT_ALLOWED, naming the JSON path under `field`, for the first
 * string in `value` that climbs with ".." or is an absolute path outside the
 * allowed prefixes, and for nesting deeper than MAX_IPAM_CONFIG_DEPTH.
 */
export function checkHostPaths(value: unknown, policy: IpamPolicy, subject: string, field: string, plugin: string): void {
  const refuse = (at: string, detail: string): never => {
    throw new CniError("CNI_NOT_ALLOWED", plugin, `Cannot use ${subject} for IPAM: ${at} ${detail}`);
  };
  const walk = (node: unknown, at: string, depth: number): void => {
    if (typeof node === "string") {
      const problem = pathProblem(node, policy.allowedPathPrefixes);
      if (problem !== undefined) refuse(at, `is ${quote(node)}, ${problem}`);
      return;
    }
    if (typeof node !== "object" || node === null) return;
    if (depth >= MAX_IPAM_CONFIG_DEPTH) refuse(at, `nests deeper than ${MAX_IPAM_CONFIG_DEPTH} levels`);
    if (Array.isArray(node)) {
      node.forEach((item: unknown, i) => {
        walk(item, `${at}[${i}]`, depth + 1);
      });
      return;
    }
    for (const [key, item] of Object.entries(node)) walk(item, childField(at, key), depth + 1);
  };
  walk(value, field, 0);
}

function pathProblem(text: string, prefixes: readonly string[]): string | undefined {
  if (text.split("/").includes("..")) return 'which climbs out of its directory with ".."; IPAM configuration must not contain ".." path segments';
  if (!text.startsWith("/")) return undefined;
  const normal = posix.normalize(text);
  if (prefixes.some((prefix) => normal.startsWith(prefix) || `${normal}/` === prefix)) return undefined;
  return `a host path outside the allowed prefixes (${prefixes.join(", ") || "none"}); a node administrator can allow a prefix in cni.ipam.allowedPathPrefixes of the agent configuration`;
}

/** `a.b` for plain keys, `a["we.ird key"]` for the rest, so the path reads back unambiguously. */
function childField(at: string, key: string): string {
  if (/^[A-Za-z_$][\w$-]*$/.test(key)) return at === "" ? key : `${at}.${key}`;
  return `${at}[${quote(key)}]`;
}

/** A value quoted for a message: JSON escapes control characters, and a long one is cut. */
function quote(text: string): string {
  const quoted = JSON.stringify(text);
  return quoted.length <= 100 ? quoted : `${quoted.slice(0, 96)}..."`;
}
