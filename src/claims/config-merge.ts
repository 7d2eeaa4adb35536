/**
 * Which NetworkConfig documents apply to one allocated request, and what they
 * add up to.
 *
 * Rules (docs/configuration.md repeats them for users):
 * 1. Only entries whose opaque.driver is ours count. An entry with no
 *    `requests` applies to every request; otherwise to the requests it names
 *    (naming a request also covers its subrequests, "req" covers "req/a").
 * 2. DeviceClass entries apply first, then the claim's, each in order; a later
 *    document overrides an earlier one field by field. `routes` and
 *    `interface.addresses` are replaced whole; `interface.sysctls` merge by key.
 * 3. `interface.addresses` and `ipamFrom` are two answers to one question, so
 *    a later document that sets one drops the other inherited from before.
 *    One document setting both is an error.
 */
import {
  familyOf,
  parseNetworkConfig,
  type ChildConfig,
  type FieldProblem,
  type InterfaceConfig,
  type IpamFromConfig,
  type NetworkConfigDocument,
  type RouteConfig,
} from "./network-config.ts";
import { CHILD_MODES } from "../engine/index.ts";
import { ipEquals, parseCidr, parseIp, prefixContains, type IpAddress } from "../common/ip.ts";

export interface OpaqueConfigEntry {
  source: "FromClass" | "FromClaim";
  requests: readonly string[];
  driver: string;
  parameters: unknown;
}

export interface ResolvedNetworkConfig {
  mode: "native" | "multus";
  interface: Omit<InterfaceConfig, "sysctls" | "addresses"> & {
    addresses: string[];
    sysctls: Record<string, string>;
  };
  routes: RouteConfig[];
  ipamFrom?: IpamFromConfig;
  /** The child fields the documents set (kind, mode and MAC policy default at prepare, on a shared parent). */
  child: ChildConfig;
  /** The label of the document that set ipamFrom, so an error about it says where to fix it. */
  ipamFromSetBy?: string;
  /** Where each document came from, in the order applied, for status and events. */
  sources: string[];
}

export type ResolveResult =
  | { ok: true; config: ResolvedNetworkConfig }
  | { ok: false; problems: FieldProblem[] };

/** Labels an entry the way its author wrote it: class configs and claim configs are numbered separately. */
function labelEntries(entries: readonly OpaqueConfigEntry[]): string[] {
  let classIndex = 0;
  let claimIndex = 0;
  return entries.map((entry) =>
    entry.source === "FromClass"
      ? `DeviceClass config[${classIndex++}].opaque.parameters`
      : `spec.devices.config[${claimIndex++}].opaque.parameters`,
  );
}

export function requestMatches(configRequests: readonly string[], request: string): boolean {
  if (configRequests.length === 0) return true;
  const parent = request.split("/")[0];
  return configRequests.some((name) => name === request || name === parent);
}

export function resolveRequestConfig(
  entries: readonly OpaqueConfigEntry[],
  options: { driverName: string; request: string },
): ResolveResult {
  const labels = labelEntries(entries);
  const applicable = entries
    .map((entry, i) => ({ entry, label: labels[i] ?? `config[${i}]` }))
    .filter(({ entry }) => entry.driver === options.driverName && requestMatches(entry.requests, options.request))
    // Stable: class documents before claim documents, each in written order.
    .sort((a, b) => rank(a.entry) - rank(b.entry));

  const problems: FieldProblem[] = [];
  const documents: { doc: NetworkConfigDocument; label: string }[] = [];
  for (const { entry, label } of applicable) {
    const parsed = parseNetworkConfig(entry.parameters);
    if (parsed.ok) documents.push({ doc: parsed.config, label });
    else problems.push(...parsed.problems.map((p) => ({ field: join(label, p.field), message: p.message })));
  }
  if (problems.length > 0) return { ok: false, problems };

  const merged = mergeDocuments(documents);
  if (!merged.ok) return merged;
  const crossProblems = checkResolved(merged.config, merged.origin);
  return crossProblems.length > 0 ? { ok: false, problems: crossProblems } : { ok: true, config: merged.config };
}

function rank(entry: OpaqueConfigEntry): number {
  return entry.source === "FromClass" ? 0 : 1;
}

type Origin = Map<string, string>;

function mergeDocuments(
  documents: readonly { doc: NetworkConfigDocument; label: string }[],
): { ok: true; config: ResolvedNetworkConfig; origin: Origin } | { ok: false; problems: FieldProblem[] } {
  const config: ResolvedNetworkConfig = { mode: "native", interface: { addresses: [], sysctls: {} }, routes: [], child: {}, sources: [] };
  // Which document last set each field, so an error can point at it.
  const origin: Origin = new Map();
  for (const { doc, label } of documents) {
    config.sources.push(label);
    if (doc.interface?.addresses !== undefined && doc.ipamFrom !== undefined) {
      return {
        ok: false,
        problems: [{ field: join(label, "ipamFrom"), message: "cannot be set together with interface.addresses; choose static addresses or IPAM" }],
      };
    }
    if (doc.mode !== undefined) set(origin, "mode", label, () => (config.mode = doc.mode ?? "native"));
    if (doc.routes !== undefined) set(origin, "routes", label, () => (config.routes = doc.routes ?? []));
    if (doc.ipamFrom !== undefined) {
      const ipamFrom = doc.ipamFrom;
      set(origin, "ipamFrom", label, () => (config.ipamFrom = ipamFrom));
      config.interface.addresses = [];
      origin.delete("interface.addresses");
    }
    const { kind, mode, macPolicy } = doc.child ?? {};
    if (kind !== undefined) set(origin, "child.kind", label, () => (config.child.kind = kind));
    if (mode !== undefined) set(origin, "child.mode", label, () => (config.child.mode = mode));
    if (macPolicy !== undefined) set(origin, "child.macPolicy", label, () => (config.child.macPolicy = macPolicy));
    const iface = doc.interface;
    if (iface === undefined) continue;
    if (iface.addresses !== undefined) {
      const addresses = iface.addresses;
      set(origin, "interface.addresses", label, () => (config.interface.addresses = [...addresses]));
      delete config.ipamFrom;
      origin.delete("ipamFrom");
    }
    if (iface.name !== undefined) {
      const name = iface.name;
      set(origin, "interface.name", label, () => (config.interface.name = name));
    }
    if (iface.mtu !== undefined) {
      const mtu = iface.mtu;
      set(origin, "interface.mtu", label, () => (config.interface.mtu = mtu));
    }
    if (iface.hardwareAddress !== undefined) {
      const mac = iface.hardwareAddress;
      set(origin, "interface.hardwareAddress", label, () => (config.interface.hardwareAddress = mac));
    }
    for (const [key, value] of Object.entries(iface.sysctls ?? {})) {
      set(origin, `interface.sysctls.${key}`, label, () => (config.interface.sysctls[key] = value));
    }
  }
  const ipamFromSetBy = origin.get("ipamFrom");
  if (ipamFromSetBy !== undefined) config.ipamFromSetBy = ipamFromSetBy;
  return { ok: true, config, origin };
}

function set(origin: Origin, field: string, label: string, apply: () => void): void {
  apply();
  origin.set(field, label);
}

/** Rules that only make sense once all documents are merged. */
function checkResolved(config: ResolvedNetworkConfig, origin: Origin): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const at = (field: string): string => join(origin.get(field) ?? "", field);

  if (config.mode === "multus") {
    for (const field of origin.keys()) {
      if (field === "mode") continue;
      problems.push({
        field: at(field),
        message: `cannot be set in mode "multus" (set by ${origin.get("mode") ?? "?"}): the NetworkAttachmentDefinition configures the interface`,
      });
    }
    return problems;
  }

  const mtu = config.interface.mtu;
  const addresses = config.interface.addresses.map((a) => parseCidr(a)).filter((a) => a !== undefined);
  if (mtu !== undefined && mtu < 1280 && addresses.some((a) => a.family === 6)) {
    problems.push({ field: at("interface.mtu"), message: `is ${mtu}, but IPv6 needs at least 1280 and interface.addresses has an IPv6 address` });
  }

  problems.push(...routeProblems(config.routes, config.ipamFrom === undefined ? config.interface.addresses : undefined, at("routes")));
  problems.push(...childProblems(config, at));
  return problems;
}

function childProblems({ child, interface: iface }: ResolvedNetworkConfig, at: (field: string) => string): FieldProblem[] {
  const kind = child.kind ?? "macvlan";
  const modes: readonly string[] = CHILD_MODES[kind];
  const problems: FieldProblem[] = [];
  if (child.mode !== undefined && !modes.includes(child.mode)) {
    problems.push({ field: at("child.mode"), message: `is "${child.mode}", which is not a mode of ${kind}; use one of ${modes.join(", ")}` });
  }
  if (kind === "ipvlan") {
    const why = "an ipvlan child has its parent's MAC address";
    if (child.macPolicy !== undefined) problems.push({ field: at("child.macPolicy"), message: `cannot be set for child.kind ipvlan: ${why}` });
    if (iface.hardwareAddress !== undefined) problems.push({ field: at("interface.hardwareAddress"), message: `cannot be set for child.kind ipvlan: ${why}` });
  }
  return problems;
}

/**
 * Route rules. With `addresses` undefined (IPAM not run yet) only the rules
 * that do not depend on the addresses are checked; prepare calls this again
 * with the leased addresses.
 */
export function routeProblems(routes: readonly RouteConfig[], addressTexts: readonly string[] | undefined, field: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const addresses = (addressTexts ?? []).map((a) => parseCidr(a)).filter((a) => a !== undefined);
  routes.forEach((route, i) => {
    const at = `${field}[${i}]`;
    const family = familyOf(route.destination);
    if (route.gateway !== undefined && familyOf(route.gateway) !== family) {
      problems.push({ field: `${at}.gateway`, message: `${route.gateway} is not in the same IP family as destination ${route.destination}` });
    }
    if (route.source !== undefined && familyOf(route.source) !== family) {
      problems.push({ field: `${at}.source`, message: `${route.source} is not in the same IP family as destination ${route.destination}` });
    }
    if (route.gateway !== undefined && route.scope !== undefined && route.scope !== "universe") {
      problems.push({ field: `${at}.scope`, message: `is "${route.scope}", but a route through a gateway must have scope "universe"` });
    }
    if (addressTexts === undefined) return;
    if (route.source !== undefined) {
      const source = parseIp(route.source);
      if (source !== undefined && !addresses.some((a) => ipEquals(a, source))) {
        problems.push({ field: `${at}.source`, message: `${route.source} is not one of the interface's addresses, so the kernel would refuse it` });
      }
    }
    if (route.gateway !== undefined) {
      const gateway = parseIp(route.gateway);
      const onLink =
        gateway !== undefined &&
        (addresses.some((a) => prefixContains(a, gateway)) ||
          routes.some((r) => r.gateway === undefined && r.scope === "link" && prefixContainsText(r.destination, gateway)));
      if (gateway !== undefined && !onLink) {
        problems.push({
          field: `${at}.gateway`,
          message: `${route.gateway} is not inside any of the interface's address prefixes nor a link-scope route, so it is unreachable`,
        });
      }
    }
  });
  return problems;
}

function prefixContainsText(cidr: string, address: IpAddress): boolean {
  const prefix = parseCidr(cidr);
  return prefix !== undefined && prefixContains(prefix, address);
}

function join(base: string, field: string): string {
  if (base === "") return field;
  if (field === "") return base;
  return field.startsWith("[") ? `${base}${field}` : `${base}.${field}`;
}
