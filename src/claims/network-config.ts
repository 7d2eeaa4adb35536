/**
 * The opaque configuration API: `netclaim.dev/v1alpha1` `NetworkConfig`, as
 * found in `DeviceClass.spec.config[].opaque.parameters` and
 * `ResourceClaim.spec.devices.config[].opaque.parameters`.
 *
 * This file validates one document on its own (syntax, ranges, unknown
 * fields); rules that span documents, such as "a route's gateway must be
 * reachable", run on the merged result in config-merge.ts.
 */
import { z } from "zod";
import { formatCidr, networkOf, parseCidr, parseIp, type IpFamily } from "../common/ip.ts";
import { INTERFACE_NAME, SYSCTL_VALUE } from "../common/linux-names.ts";
import { CHILD_MODES } from "../engine/index.ts";

export const NETWORK_CONFIG_API_VERSION = "netclaim.dev/v1alpha1";
export const NETWORK_CONFIG_KIND = "NetworkConfig";

/** The DRA API caps opaque parameters at 10 KiB; we refuse more up front. */
export const MAX_PARAMETERS_BYTES = 10 * 1024;
/** ResourceClaim status networkData.ips holds at most 16 entries. */
export const MAX_ADDRESSES = 16;
export const MAX_ROUTES = 64;
export const MAX_SYSCTLS = 32;
/** A NetworkConfig nests four levels (interface.sysctls.<key>); far deeper input is refused before it is encoded. */
export const MAX_PARAMETERS_DEPTH = 16;

/** The kernel's interface-name rule (common/linux-names.ts), refusing "." and ".." as the kernel does. */
const interfaceName = z
  .string()
  .regex(INTERFACE_NAME, { error: "must be 1 to 15 characters of letters, digits, '_', '.' or '-'" })
  .refine((n) => n !== "." && n !== "..", { error: 'must not be "." or ".."' });

const macAddress = z
  .string()
  .regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/, { error: "must be six colon-separated hex bytes, e.g. 02:00:5e:10:00:01" })
  .transform((mac) => mac.toLowerCase())
  .refine((mac) => (parseInt(mac.slice(0, 2), 16) & 1) === 0, { error: "must be a unicast address (the first byte must be even)" })
  .refine((mac) => mac !== "00:00:00:00:00:00", { error: "must not be all zeros" });

const cidrAddress = z.string().superRefine((text, ctx) => {
  if (parseCidr(text) === undefined) {
    ctx.addIssue({ code: "custom", message: `"${text}" is not an address with a prefix length, e.g. 198.51.100.10/24 or fd00::10/64` });
  }
});

const ipAddress = z.string().superRefine((text, ctx) => {
  if (parseIp(text) === undefined) ctx.addIssue({ code: "custom", message: `"${text}" is not an IP address` });
});

const routeDestination = z.string().superRefine((text, ctx) => {
  const prefix = parseCidr(text);
  if (prefix === undefined) {
    ctx.addIssue({ code: "custom", message: `"${text}" is not a prefix, e.g. 198.51.100.0/24, 0.0.0.0/0 or ::/0` });
    return;
  }
  const network = formatCidr(networkOf(prefix));
  if (network !== formatCidr(prefix)) {
    ctx.addIssue({ code: "custom", message: `"${text}" has host bits set; did you mean ${network}?` });
  }
});

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { error: "must be a DNS label (lowercase letters, digits and '-', at most 63)" });

const dnsSubdomain = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, {
    error: "must be a DNS subdomain (lowercase letters, digits, '-' and '.')",
  });

/**
 * Per-interface sysctls, named relative to the interface: `ipv4.arp_ignore`
 * is written to /proc/sys/net/ipv4/conf/<pod-side name>/arp_ignore inside the
 * pod, `ipv6.accept_ra` to .../net/ipv6/conf/<name>/accept_ra. Nothing else is
 * reachable, so a claim cannot change the pod's other interfaces.
 */
const sysctlKey = z.string().regex(/^ipv[46]\.[a-z0-9_]{1,48}$/, {
  error: 'must be "ipv4.<name>" or "ipv6.<name>", e.g. ipv4.arp_ignore',
});
const sysctlValue = z.string().regex(SYSCTL_VALUE, { error: "must be 1 to 64 plain characters" });

const routeSchema = z.strictObject({
  destination: routeDestination,
  gateway: ipAddress.optional(),
  source: ipAddress.optional(),
  /** Routing table id; 255 (local) belongs to the kernel. Default: main (254). */
  table: z
    .number()
    .int()
    .min(1)
    .max(0xffff_ffff)
    .refine((t) => t !== 255, { error: "must not be 255, the kernel's local table" })
    .optional(),
  scope: z.enum(["universe", "link", "host"]).optional(),
  metric: z.number().int().min(0).max(0xffff_ffff).optional(),
});

const interfaceSchema = z.strictObject({
  /** Name inside the pod. */
  name: interfaceName.optional(),
  mtu: z.number().int().min(68).max(65535).optional(),
  hardwareAddress: macAddress.optional(),
  /** Static addresses with prefix length; mutually exclusive with ipamFrom. */
  addresses: z
    .array(cidrAddress)
    .max(MAX_ADDRESSES)
    .refine((list) => new Set(list.map(canonicalCidr)).size === list.length, { error: "must not repeat an address" })
    .optional(),
  sysctls: z
    .record(sysctlKey, sysctlValue)
    .refine((map) => Object.keys(map).length <= MAX_SYSCTLS, { error: `must have at most ${MAX_SYSCTLS} entries` })
    .optional(),
});

const ipamFromSchema = z.strictObject({
  /** Namespace of the NetworkAttachmentDefinition; default: the claim's namespace. */
  namespace: dnsLabel.optional(),
  name: dnsSubdomain,
});

/**
 * The interface netclaim makes on a shared parent (a device the agent
 * publishes with allowMultipleAllocations): created in the pod, deleted with
 * it. Each field may come from a different document; the merged result is
 * checked as a whole (config-merge.ts).
 */
const childSchema = z.strictObject({
  /** Default: macvlan. */
  kind: z.enum(["macvlan", "ipvlan"]).optional(),
  /** macvlan: bridge (default), private, vepa, passthru; ipvlan: l2 (default), l3, l3s. */
  mode: z.enum([...CHILD_MODES.macvlan, ...CHILD_MODES.ipvlan]).optional(),
  /**
   * macvlan only. stable (default): a MAC derived from the claim and its
   * request, the same on every attach of the claim (so after a recovery
   * too); random: the kernel's, new on every attach. interface.hardwareAddress
   * overrides both.
   */
  macPolicy: z.enum(["stable", "random"]).optional(),
});

export const networkConfigSchema = z.strictObject({
  apiVersion: z.literal(NETWORK_CONFIG_API_VERSION, { error: `must be "${NETWORK_CONFIG_API_VERSION}"` }),
  kind: z.literal(NETWORK_CONFIG_KIND, { error: `must be "${NETWORK_CONFIG_KIND}"` }),
  /**
   * native: netclaim moves the device into the pod and configures it.
   * multus: netclaim only advertises the device; Multus configures it from a
   * NetworkAttachmentDefinition.
   */
  mode: z.enum(["native", "multus"]).optional(),
  interface: interfaceSchema.optional(),
  routes: z.array(routeSchema).max(MAX_ROUTES).optional(),
  ipamFrom: ipamFromSchema.optional(),
  child: childSchema.optional(),
});

/** One validated NetworkConfig document; every field optional so documents can layer. */
export type NetworkConfigDocument = z.infer<typeof networkConfigSchema>;
export type RouteConfig = z.infer<typeof routeSchema>;
export type InterfaceConfig = z.infer<typeof interfaceSchema>;
export type IpamFromConfig = z.infer<typeof ipamFromSchema>;
export type ChildConfig = z.infer<typeof childSchema>;

export interface FieldProblem {
  /** Dotted path from the document root, e.g. "interface.mtu" or "routes[1].gateway". */
  field: string;
  message: string;
}

export type ParseResult =
  | { ok: true; config: NetworkConfigDocument }
  | { ok: false; problems: FieldProblem[] };

/** Validates one opaque parameters object. Never throws. */
export function parseNetworkConfig(parameters: unknown): ParseResult {
  const deep = pathDeeperThan(parameters, MAX_PARAMETERS_DEPTH);
  if (deep !== undefined) {
    return { ok: false, problems: [{ field: formatPath(deep), message: `nests deeper than ${MAX_PARAMETERS_DEPTH} levels; a NetworkConfig needs four` }] };
  }
  const size = Buffer.byteLength(JSON.stringify(parameters ?? null), "utf8");
  if (size > MAX_PARAMETERS_BYTES) {
    return { ok: false, problems: [{ field: "", message: `is ${size} bytes; at most ${MAX_PARAMETERS_BYTES} are allowed` }] };
  }
  const result = networkConfigSchema.safeParse(parameters);
  if (result.success) return { ok: true, config: result.data };
  return {
    ok: false,
    problems: result.error.issues.map((issue) => ({ field: formatPath(issue.path), message: issueMessage(issue) })),
  };
}

/** Where `value` nests past `limit`, checked before anything recursive (the encoder, zod) sees thousands of levels. */
function pathDeeperThan(value: unknown, limit: number): PropertyKey[] | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  if (limit === 0) return [];
  for (const [key, item] of Object.entries(value)) {
    const below = pathDeeperThan(item, limit - 1);
    if (below !== undefined) return [Array.isArray(value) ? Number(key) : key, ...below];
  }
  return undefined;
}

/** zod reports a bad record key as "Invalid key in record"; the reason is inside. */
function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_key") {
    const inner = issue.issues[0];
    if (inner !== undefined) return `key ${inner.message}`;
  }
  return issue.message;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

export function familyOf(text: string): IpFamily | undefined {
  return (parseCidr(text) ?? parseIp(text))?.family;
}

function canonicalCidr(text: string): string {
  const prefix = parseCidr(text);
  return prefix === undefined ? text : formatCidr(prefix);
}
