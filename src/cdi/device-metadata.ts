/**
 * Device metadata in containers (KEP-5304; the format of
 * k8s.io/dynamic-resource-allocation v0.37, package api/metadata): for each
 * request of a prepared claim, a file describing the request's netclaim
 * devices (driver, pool, name, the attributes their ResourceSlice publishes
 * and, once a device is in its pod, its networkData), and a CDI device that
 * bind-mounts it read-only where the KEP says a container finds it:
 *
 *   /var/run/kubernetes.io/dra-device-attributes/resourceclaims/<claim>/<request>/<driver>-metadata.json
 *   /var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/<pod claim name>/<request>/<driver>-metadata.json
 *
 * The second for a claim made from a template, whose name the pod spec cannot
 * know: the claim carries the pod's name for it in the
 * resource.kubernetes.io/pod-claim-name annotation. <request> is the base
 * request name ("nic" for "nic/fast"); the file holds the full one.
 *
 * The file is a JSON stream: the same DeviceMetadata once per API version,
 * newest first (metadata.resource.k8s.io/v1beta1, then v1alpha1, whose
 * schemas are the same), printed as the library's encoder prints it, so a
 * reader takes the first version it knows.
 *
 * It is written at prepare with generation 1, under a temporary name then
 * renamed (no container mounts it yet), and updated by updateNetworkData once
 * the interface is in the pod, generation + 1, in place: a container's bind
 * mount holds the inode it was created with, and a rename would leave it on
 * the old file. Neither is fsynced: the file belongs to this boot, and the
 * prepare after a reboot writes it again unless it is there and reads back
 * (publishClaimMetadata's keepIntact).
 *
 * On the host, under a directory the runtime sees at the same path as the
 * agent (the agent's runtimeDir): <dir>/<claim uid>/<request>/<driver>-metadata.json;
 * the CDI spec is <specDir>/<driver>-metadata_<claim uid>_<request>.json, of
 * kind "<driver>/metadata" with device "<claim uid>_<request>", as the
 * library names them.
 */
import { open, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { NetclaimError } from "../common/errors.ts";
import { formatCidr, parseCidr } from "../common/ip.ts";
import { CDI_VERSION, writeFileAtomically } from "./cdi.ts";
import { firstIssue } from "../common/zod-issue.ts";

/** Where containers find metadata files (the KEP's ContainerDir). */
const METADATA_CONTAINER_DIR = "/var/run/kubernetes.io/dra-device-attributes";
/** Set by the ResourceClaim controller on claims it makes from a pod's template (k8s.io/api resource/v1). */
export const POD_CLAIM_NAME_ANNOTATION = "resource.kubernetes.io/pod-claim-name";

const KIND = "DeviceMetadata";
/** Newest first: a reader takes the first version it knows. */
const API_VERSIONS = ["metadata.resource.k8s.io/v1beta1", "metadata.resource.k8s.io/v1alpha1"] as const;
/** The API's limits, which the library's validation applies to a file. */
const MAX_ATTRIBUTES = 32;
const MAX_IPS = 16;
const MAX_INTERFACE_NAME_BYTES = 256;
const MAX_HARDWARE_ADDRESS_BYTES = 128;

// Every name below ends up in a path, on the host or in the container: nothing may climb out.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const UID = /^[A-Za-z0-9][A-Za-z0-9-]*$/;

export type MetadataAttribute = { bool: boolean } | { int: number } | { string: string } | { version: string };

/** What the pod sees of a device (ResourceClaim networkData): its interface, addresses in CIDR form, MAC. */
export interface NetworkData {
  interfaceName: string;
  ips: readonly string[];
  hardwareAddress?: string | undefined;
}

export interface MetadataDevice {
  driver: string;
  pool: string;
  name: string;
  attributes?: Readonly<Record<string, MetadataAttribute>> | undefined;
  networkData?: NetworkData | undefined;
}

export interface MetadataClaim {
  namespace: string;
  name: string;
  uid: string;
  /** The claim's resource.kubernetes.io/pod-claim-name annotation: it was made from a template. */
  podClaimName?: string | undefined;
}

/** One metadata file: one request of one claim. */
export interface DeviceMetadata {
  claim: MetadataClaim;
  generation: number;
  /** The full request name, "req" or "req/sub". */
  request: string;
  devices: readonly MetadataDevice[];
}

export class DeviceMetadataError extends NetclaimError<"DEVICE_METADATA"> {
  constructor(message: string, options?: ErrorOptions) {
    super("DEVICE_METADATA", message, options);
  }
}

/** "nic/fast" → "nic": a request's directory and CDI device are named after its base request. */
function baseRequest(request: string): string {
  return request.split("/", 1)[0] ?? request;
}

/** Where a container of the claim's pod finds the file of `request`. */
function metadataContainerPath(driver: string, claim: MetadataClaim, request: string): string {
  const [kind, claimName] = claim.podClaimName === undefined ? ["resourceclaims", claim.name] : ["resourceclaimtemplates", claim.podClaimName];
  return `${METADATA_CONTAINER_DIR}/${kind}/${claimName}/${baseRequest(request)}/${driver}-metadata.json`;
}

/** The CDI device ("<driver>/metadata=<claim uid>_<request>") that mounts the file of `request`. */
function metadataCdiDeviceId(driver: string, claimUid: string, request: string): string {
  return `${driver}/metadata=${claimUid}_${baseRequest(request)}`;
}

/** The metadata file stream for `metadata`: one object per API version, newest first. */
export function encodeDeviceMetadata(metadata: DeviceMetadata): string {
  checkMetadata(metadata);
  const { claim, generation, request, devices } = metadata;
  return API_VERSIONS.map((apiVersion) =>
    `${goJson({
      kind: KIND,
      apiVersion,
      metadata: { name: claim.name, namespace: claim.namespace, uid: claim.uid, generation },
      ...(claim.podClaimName !== undefined && { podClaimName: claim.podClaimName }),
      requests: [{ name: request, devices: devices.map(encodeDevice) }],
    })}\n`,
  ).join("");
}

/** The first object of a metadata stream in a version this agent knows (newer ones are skipped, as the library's decoder does). */
export function decodeDeviceMetadata(text: string, where: string): DeviceMetadata {
  let values: unknown[];
  try {
    values = jsonStream(text).map((raw) => JSON.parse(raw) as unknown);
  } catch (err) {
    throw new DeviceMetadataError(`${where} is not a stream of JSON objects: ${(err as Error).message}`, { cause: err });
  }
  for (const value of values) {
    const apiVersion = z.object({ apiVersion: z.string() }).safeParse(value).data?.apiVersion;
    if (!API_VERSIONS.some((known) => known === apiVersion)) continue;
    const parsed = storedSchema.safeParse(value);
    if (!parsed.success) {
      throw new DeviceMetadataError(`${where} (${apiVersion ?? ""}): ${firstIssue(parsed.error)}`);
    }
    const { metadata, podClaimName, requests } = parsed.data;
    const [only] = requests;
    return {
      claim: { namespace: metadata.namespace, name: metadata.name, uid: metadata.uid, ...(podClaimName !== undefined && { podClaimName }) },
      generation: metadata.generation,
      request: only.name,
      devices: only.devices,
    };
  }
  throw new DeviceMetadataError(`${where} holds no ${KIND} of ${API_VERSIONS.join(" or ")}`);
}

/** Where the metadata of one claim lives on the host. */
export interface MetadataLocation {
  /** Host directory of the files; the runtime must see it at the same path. */
  dir: string;
  /** The runtime's CDI spec directory. */
  specDir: string;
}

/** A device of the claim to describe, with its (full) request name. */
export interface RequestDevice extends Omit<MetadataDevice, "driver" | "networkData"> {
  request: string;
}

export interface PublishedDevice {
  /** The host path of the file that describes the device's request. */
  file: string;
  /** On the first device of each request only: the CDI device that mounts the file. */
  cdiDeviceId?: string;
}

/**
 * Writes the file (generation 1) and the CDI spec of every request among
 * `devices`, and says for each device (by name) its file and, on the first
 * device of each request, the CDI device ID to answer the kubelet with: the
 * kubelet gives a request's CDI devices to every container that uses the
 * request, so one per request is enough, as the library does it. With
 * `keepIntact` (a prepared claim's files written again after a reboot), a
 * file that is there and reads back is left as it is: it may hold the pod's
 * networkData.
 */
export async function publishClaimMetadata(
  location: MetadataLocation,
  driver: string,
  claim: MetadataClaim,
  devices: readonly RequestDevice[],
  options: { keepIntact?: boolean } = {},
): Promise<Map<string, PublishedDevice>> {
  const byRequest = new Map<string, RequestDevice[]>();
  for (const device of devices) {
    const base = baseRequest(device.request);
    const group = byRequest.get(base) ?? [];
    const first = group[0];
    // The scheduler picks one subrequest per request: two would share one file.
    if (first !== undefined && first.request !== device.request) {
      throw new DeviceMetadataError(`${describeClaim(claim)}: devices ${first.name} and ${device.name} are allocated for requests ${first.request} and ${device.request}, which would share one metadata file`);
    }
    byRequest.set(base, [...group, device]);
  }
  const out = new Map<string, PublishedDevice>();
  for (const [base, group] of byRequest) {
    const request = group[0]?.request ?? base;
    const text = encodeDeviceMetadata({
      claim,
      generation: 1,
      request,
      devices: group.map((d) => ({ driver, pool: d.pool, name: d.name, attributes: d.attributes })),
    });
    const file = metadataFile(location.dir, claim.uid, request, driver);
    const spec = {
      cdiVersion: CDI_VERSION,
      kind: `${driver}/metadata`,
      devices: [{
        name: `${claim.uid}_${base}`,
        containerEdits: {
          mounts: [{ hostPath: file, containerPath: metadataContainerPath(driver, claim, request), type: "bind", options: ["bind", "ro", "nosuid", "nodev", "noexec"] }],
        },
      }],
    };
    const specFile = join(location.specDir, `${driver}-metadata_${claim.uid}_${base}.json`);
    try {
      if (options.keepIntact !== true || !(await readsBack(file))) writeFileAtomically(file, text);
      writeFileAtomically(specFile, `${JSON.stringify(spec, null, 2)}\n`);
    } catch (err) {
      throw new DeviceMetadataError(`${describeClaim(claim)}, request ${request}: cannot write its device metadata: ${(err as Error).message}`, { cause: err });
    }
    for (const [i, device] of group.entries()) {
      out.set(device.name, { file, ...(i === 0 && { cdiDeviceId: metadataCdiDeviceId(driver, claim.uid, request) }) });
    }
  }
  return out;
}

/** Whether the metadata file is there and decodes: one an unsynced write left empty or torn after a power cut does not. */
async function readsBack(file: string): Promise<boolean> {
  try {
    decodeDeviceMetadata(await readFile(file, "utf8"), file);
    return true;
  } catch {
    return false;
  }
}

/** Updates of one file in this process, one after the other. */
const updates = new Map<string, Promise<unknown>>();

/**
 * Sets the networkData of the named devices in the metadata file `file` and
 * raises its generation, in place (see the header). Data equal to what the
 * file holds writes nothing; resolves whether the file changed.
 */
export function updateNetworkData(file: string, networkData: ReadonlyMap<string, NetworkData>): Promise<boolean> {
  const previous = updates.get(file) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(() => rewrite(file, networkData));
  updates.set(file, next);
  void next.finally(() => {
    if (updates.get(file) === next) updates.delete(file);
  }).catch(() => undefined);
  return next;
}

async function rewrite(file: string, networkData: ReadonlyMap<string, NetworkData>): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new DeviceMetadataError(`cannot read device metadata ${file}: ${(err as Error).message}`, { cause: err });
  }
  const current = decodeDeviceMetadata(text, file);
  const where = `${describeClaim(current.claim)}, request ${current.request}`;
  for (const name of networkData.keys()) {
    if (!current.devices.some((d) => d.name === name)) throw new DeviceMetadataError(`${where}: device ${name} is not in its metadata file ${file}`);
  }
  const devices = current.devices.map((device) => {
    const data = networkData.get(device.name);
    if (data === undefined) return device;
    const next = canonicalNetworkData(data, `${where}, device ${device.name}`);
    return JSON.stringify(next) === JSON.stringify(device.networkData) ? device : { ...device, networkData: next };
  });
  if (devices.every((device, i) => device === current.devices[i])) return false;
  const bytes = Buffer.from(encodeDeviceMetadata({ ...current, generation: current.generation + 1, devices }));
  try {
    const handle = await open(file, "r+");
    try {
      await handle.writeFile(bytes);
      await handle.truncate(bytes.length);
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new DeviceMetadataError(`${where}: cannot update its device metadata ${file}: ${(err as Error).message}`, { cause: err });
  }
  return true;
}

/** The networkData of one device, for the metadata file of its request. */
export interface DeviceNetworkData {
  file: string;
  device: string;
  networkData: NetworkData;
}

/** updateNetworkData for devices of any requests, each file once; rejects naming every file that failed. */
export async function recordNetworkData(entries: readonly DeviceNetworkData[]): Promise<void> {
  const byFile = new Map<string, Map<string, NetworkData>>();
  for (const { file, device, networkData } of entries) byFile.set(file, (byFile.get(file) ?? new Map<string, NetworkData>()).set(device, networkData));
  const results = await Promise.allSettled([...byFile].map(([file, data]) => updateNetworkData(file, data)));
  const failures = results.flatMap((r) => (r.status === "rejected" ? [r.reason instanceof Error ? r.reason.message : String(r.reason)] : []));
  if (failures.length > 0) throw new DeviceMetadataError(failures.join("; "));
}

/** Removes the files and CDI specs of every request of the claim; nothing there is fine. */
export async function removeClaimMetadata(location: MetadataLocation, claimUid: string): Promise<void> {
  if (!UID.test(claimUid)) throw new DeviceMetadataError(`"${claimUid}" is not a claim UID`);
  await rm(join(location.dir, claimUid), { recursive: true, force: true });
  let names: string[];
  try {
    names = await readdir(location.specDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  // Temporary files of an interrupted write match too.
  await Promise.all(names.filter((n) => n.includes(`-metadata_${claimUid}_`)).map((n) => rm(join(location.specDir, n), { force: true })));
}

function metadataFile(dir: string, claimUid: string, request: string, driver: string): string {
  return join(dir, claimUid, baseRequest(request), `${driver}-metadata.json`);
}

function describeClaim(claim: MetadataClaim): string {
  return `claim ${claim.namespace}/${claim.name}`;
}

function checkMetadata({ claim, generation, request, devices }: DeviceMetadata): void {
  const where = `${describeClaim(claim)}, request ${request}`;
  const fail = (message: string): never => {
    throw new DeviceMetadataError(`${where}: ${message}`);
  };
  if (!DNS_SUBDOMAIN.test(claim.namespace) || !DNS_SUBDOMAIN.test(claim.name)) fail("the claim's namespace and name must be DNS subdomains");
  if (!UID.test(claim.uid)) fail(`"${claim.uid}" is not a claim UID`);
  if (claim.podClaimName !== undefined && !DNS_LABEL.test(claim.podClaimName)) {
    fail(`the ${POD_CLAIM_NAME_ANNOTATION} annotation "${claim.podClaimName}" is not a DNS label`);
  }
  if (!request.split("/").every((part) => DNS_LABEL.test(part)) || request.split("/").length > 2) fail("the request name must be <request> or <request>/<subrequest>, each a DNS label");
  if (!Number.isSafeInteger(generation) || generation < 1) fail(`generation ${String(generation)} is not a positive integer`);
  if (devices.length === 0) fail("no device to describe");
  for (const device of devices) {
    const at = `device ${device.name}`;
    if (!DNS_SUBDOMAIN.test(device.driver) || device.driver.length > 63) fail(`${at}: driver "${device.driver}" is not a DNS subdomain of at most 63 characters`);
    if (device.pool === "" || !device.pool.split("/").every((part) => DNS_SUBDOMAIN.test(part))) fail(`${at}: pool "${device.pool}" is not a resource pool name`);
    if (!DNS_LABEL.test(device.name)) fail(`${at}: the device name is not a DNS label`);
    const attributes = Object.entries(device.attributes ?? {});
    if (attributes.length > MAX_ATTRIBUTES) fail(`${at}: ${String(attributes.length)} attributes, more than the ${String(MAX_ATTRIBUTES)} the API allows`);
    for (const [key, value] of attributes) {
      if (!attributeSchema.safeParse(value).success) fail(`${at}: attribute ${key} must hold exactly one of bool, int, string, version`);
    }
    if (device.networkData !== undefined) canonicalNetworkData(device.networkData, `${where}, ${at}`);
  }
}

/** The networkData as the API validates it: unique canonical CIDRs (at most 16), bounded names. */
function canonicalNetworkData(data: NetworkData, where: string): NetworkData {
  if (data.interfaceName === "" || Buffer.byteLength(data.interfaceName) > MAX_INTERFACE_NAME_BYTES) {
    throw new DeviceMetadataError(`${where}: interface name "${data.interfaceName}" must be 1 to ${String(MAX_INTERFACE_NAME_BYTES)} bytes`);
  }
  if (data.hardwareAddress !== undefined && Buffer.byteLength(data.hardwareAddress) > MAX_HARDWARE_ADDRESS_BYTES) {
    throw new DeviceMetadataError(`${where}: hardware address is longer than ${String(MAX_HARDWARE_ADDRESS_BYTES)} bytes`);
  }
  const ips = new Set<string>();
  for (const ip of data.ips) {
    const prefix = parseCidr(ip);
    if (prefix === undefined) throw new DeviceMetadataError(`${where}: "${ip}" is not an address in CIDR form`);
    ips.add(formatCidr(prefix));
  }
  if (ips.size > MAX_IPS) throw new DeviceMetadataError(`${where}: ${String(ips.size)} addresses, more than the ${String(MAX_IPS)} the API allows`);
  return { interfaceName: data.interfaceName, ips: [...ips], ...(data.hardwareAddress !== undefined && { hardwareAddress: data.hardwareAddress }) };
}

function encodeDevice(device: MetadataDevice): Record<string, unknown> {
  const attributes = Object.entries(device.attributes ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const data = device.networkData;
  return {
    driver: device.driver,
    pool: device.pool,
    name: device.name,
    // Go omits empty maps and lists (omitempty) and prints map keys sorted.
    ...(attributes.length > 0 && { attributes: Object.fromEntries(attributes) }),
    ...(data !== undefined && {
      networkData: { interfaceName: data.interfaceName, ...(data.ips.length > 0 && { ips: [...data.ips] }), ...(data.hardwareAddress !== undefined && { hardwareAddress: data.hardwareAddress }) },
    }),
  };
}

/** JSON as Go's encoder indents it, HTML-safe escapes included, so our bytes are the library's. */
function goJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** The top-level objects of a JSON stream, as text. */
function jsonStream(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? "";
    if (inString) {
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
    } else if (depth === 0) {
      if (c === "{") {
        start = i;
        depth = 1;
      } else if (!/\s/.test(c)) {
        throw new SyntaxError(`unexpected ${JSON.stringify(c)} at offset ${String(i)}, between objects`);
      }
    } else if (c === '"') {
      inString = true;
    } else if (c === "{" || c === "[") {
      depth++;
    } else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) out.push(text.slice(start, i + 1));
    }
  }
  if (depth !== 0) throw new SyntaxError("the stream ends inside an object");
  return out;
}

const attributeSchema = z.union([
  z.strictObject({ bool: z.boolean() }),
  z.strictObject({ int: z.number().int() }),
  z.strictObject({ string: z.string() }),
  z.strictObject({ version: z.string() }),
]);

const storedSchema = z.object({
  kind: z.literal(KIND),
  metadata: z.object({ name: z.string(), namespace: z.string(), uid: z.string(), generation: z.number().int().positive() }),
  podClaimName: z.string().optional(),
  // netclaim writes one file per request.
  requests: z
    .tuple([
      z.object({
        name: z.string(),
        devices: z.array(
          z.object({
            driver: z.string(),
            pool: z.string(),
            name: z.string(),
            attributes: z.record(z.string(), attributeSchema).optional(),
            networkData: z.object({ interfaceName: z.string(), ips: z.array(z.string()).default([]), hardwareAddress: z.string().optional() }).optional(),
          }),
        ),
      }),
    ]),
});
