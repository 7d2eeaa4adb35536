/**
 * Prepare and unprepare for network claims: the network semantics behind the
 * DRA layer's ClaimPreparer. Prepare does everything slow and everything that
 * can fail on bad input, before the pod sandbox exists, so the attach at
 * sandbox start only executes a plan:
 *
 *   reservation check → per device: inventory lookup, config merge and
 *   validation → configured interface names against the pod's Multus
 *   networks → per device: IPAM lease, CDI spec → per request: device
 *   metadata file and its CDI spec (KEP-5304) → plan (persisted by the DRA
 *   layer).
 *
 * Nothing is half-applied: a failure releases what this prepare took before
 * the error is returned. IPAM leases are journaled before they are taken, so
 * an unprepare after a crash mid-prepare releases them too.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import type { Logger } from "pino";
import { errorMessage } from "../common/errors.ts";
import { CniError, type IpamConfig, type IpamLease, type IpamRunner } from "../cni/index.ts";
import { CHILD_MODES, childSchema, type ChildInterface } from "../engine/index.ts";
import type { DeviceAttribute } from "../kube/index.ts";
import type { Collection, StateStore } from "../store/index.ts";
import { resolveRequestConfig, routeProblems, type ResolvedNetworkConfig } from "./config-merge.ts";
import { ClaimPrepareError } from "./errors.ts";
import { assignInterfaceNames } from "./interface-names.ts";
import { MULTUS_NETWORKS_ANNOTATION, MULTUS_RENAME_HINT, multusInterfaceOwners } from "./multus-networks.ts";
import { parseClaimPlan, type ClaimPlan, type DevicePlan } from "./plan.ts";

/** What the inventory knows of a published device, as prepare needs it. */
export interface PreparableDevice {
  ifName: string;
  ifIndex: number;
  mac?: string | undefined;
  pciAddress?: string | undefined;
  rdma?: { device: string; charDevices: readonly string[] } | undefined;
  /** The k8s.cni.cncf.io/resourceName published for the device, if any. */
  resourceName?: string | undefined;
  /** The attributes its ResourceSlice publishes, for its device metadata. */
  attributes?: Readonly<Record<string, DeviceAttribute>> | undefined;
  /** Published as a shared parent: each claim gets a child of it in its pod, never the device itself. */
  shared?: boolean | undefined;
}

export interface DeviceLookup {
  /** The device `deviceName` as driver `driverName` publishes it. */
  find(deviceName: string, driverName: string): PreparableDevice | undefined;
}

export interface NadSource {
  /** The NetworkAttachmentDefinition's spec.config. */
  config(namespace: string, name: string, signal: AbortSignal): Promise<string>;
}

/** Reads the claim's pod before its sandbox exists: its Multus networks, and the claims it consumes. */
export interface PodSource {
  /**
   * The pod `namespace/name` as the API server has it now: its uid (a pod of that name may
   * have replaced the claim's), annotations, and the names of the claims it consumes.
   */
  get(namespace: string, name: string, signal: AbortSignal): Promise<{ uid: string; annotations: Readonly<Record<string, string>>; claims: readonly string[] }>;
}

/** A device that its containers get something for from the host, through CDI. */
export interface CdiDevice {
  /** The DRA device name. */
  name: string;
  /** Its RDMA device, whose character devices the containers need. */
  rdmaDevice: string | undefined;
  /** netclaim attaches it: its containers wait for its attach gate. */
  gated: boolean;
}

/** A device described in its request's metadata file. */
export interface MetadataDeviceInput {
  /** The full request name, "req" or "req/sub". */
  request: string;
  pool: string;
  name: string;
  attributes?: Readonly<Record<string, DeviceAttribute>> | undefined;
}

export interface CdiPublisher {
  /** Writes a CDI spec per device; returns the CDI device id per DRA device name. */
  write(claimUid: string, devices: readonly CdiDevice[]): Promise<Map<string, string>>;
  /**
   * Writes the device metadata (KEP-5304) of each request and the CDI spec
   * that mounts it; says per DRA device name its file and, on the first
   * device of each request, the CDI device id. With `keepIntact`, a file
   * that is there and reads back is kept. Absent: no metadata.
   */
  writeMetadata?(
    claim: ClaimForPrepare["ref"] & { podClaimName?: string | undefined },
    driverName: string,
    devices: readonly MetadataDeviceInput[],
    options?: { keepIntact?: boolean },
  ): Promise<Map<string, { file: string; cdiDeviceId?: string }>>;
  /** Removes every spec written for the claim, and its metadata. */
  remove(claimUid: string): Promise<void>;
}

export interface ClaimForPrepare {
  ref: { namespace: string; name: string; uid: string };
  /** The claim's resource.kubernetes.io/pod-claim-name annotation: the pod's name for a claim made from its template. */
  podClaimName?: string | undefined;
  results: readonly { request: string; driver: string; pool: string; device: string; shareID?: string | undefined }[];
  config: readonly { source: "FromClass" | "FromClaim"; requests: readonly string[]; driver: string; parameters: unknown }[];
  reservedFor: readonly { resource: string; apiGroup?: string | undefined; name: string; uid: string }[];
}

export interface NetworkPreparerOptions {
  driverName: string;
  /** Our pool: the node name. */
  poolName: string;
  devices: DeviceLookup;
  nads: NadSource;
  cdi: CdiPublisher;
  store: StateStore;
  /** Runs IPAM plugins for ipamFrom, within the node's IPAM policy. */
  ipam: IpamRunner;
  /**
   * Read only for a claim that configures an interface name, to refuse a name the pod's
   * Multus annotation gives a network. Absent, or when the read fails: the attach checks it.
   */
  pods?: PodSource | undefined;
  /** Prepare refuses while this is false: a sandbox started now would miss its interfaces. */
  runtimeConnected: () => boolean;
  /** Whether the node's kernel makes links of a child kind; asked when a claim's child is not macvlan. Absent: the attach finds out. */
  kernelHasLinkKind?: ((kind: ChildInterface["kind"]) => Promise<boolean>) | undefined;
  logger: Logger;
}

const pendingLeaseSchema = z.object({
  claimUid: z.string(),
  plugin: z.string(),
  config: z.record(z.string(), z.unknown()),
  containerId: z.string(),
  ifName: z.string(),
});

export class NetworkPreparer {
  readonly #options: NetworkPreparerOptions;
  readonly #leases: Collection<z.infer<typeof pendingLeaseSchema>>;

  constructor(options: NetworkPreparerOptions) {
    this.#options = options;
    this.#leases = options.store.collection("ipam-leases", pendingLeaseSchema);
  }

  /**
   * `recordIntent` is awaited before the first thing taken outside the
   * agent (an IPAM lease, a CDI spec), so a crash after it leaves a trace.
   */
  async prepare(claim: ClaimForPrepare, signal: AbortSignal, recordIntent: () => Promise<void> = () => Promise.resolve()): Promise<ClaimPlan> {
    const what = `${claim.ref.namespace}/${claim.ref.name}`;
    if (!this.#options.runtimeConnected()) {
      throw new ClaimPrepareError(
        "RUNTIME_NOT_CONNECTED",
        what,
        "netclaim is not connected to the container runtime's NRI socket, so it could not attach the interfaces when the pod starts; the kubelet retries",
      );
    }
    const pod = onlyPod(claim, what);
    const ours = claim.results.filter((r) => r.driver === this.#options.driverName);
    if (ours.length === 0) throw new ClaimPrepareError("CLAIM_NOT_ALLOCATED", what, `has no device allocated by ${this.#options.driverName}`);

    const taken: DevicePlan[] = [];
    const attributes = new Map<string, PreparableDevice["attributes"]>();
    let podClaims: readonly string[] | undefined;
    try {
      // Everything that can refuse the claim on its own runs before anything is taken,
      // except the interface names' check against the pod's Multus annotation: that one
      // reads the pod from the API server, a round trip on every pod start's path, so it
      // runs beside the files' writes (a refusal removes them, like any failed prepare).
      // Address leases wait for it: another claim could be refused the address meanwhile.
      const planned = ours.map((result) => this.#planDevice(claim, result, what));
      refuseRepeatedDevices(planned.map((p) => p.plan), what);
      await this.#checkChildKinds(planned.map((p) => p.plan), what);
      const names = this.#checkInterfaceNames(planned.map((p) => p.plan), pod, what, signal);
      names.catch(() => undefined);
      if (planned.some(({ config }) => leasesAddresses(config))) await names;
      for (const { plan, device, config, where } of planned) {
        if (leasesAddresses(config)) await this.#leaseAddresses(claim, config, plan, what, where, signal, recordIntent);
        taken.push(plan);
        attributes.set(plan.device, device.attributes);
      }
      const { cdi } = this.#options;
      const cdiDevices = cdiDevicesOf(taken);
      if (cdiDevices.length > 0 || cdi.writeMetadata !== undefined) await recordIntent();
      if (cdiDevices.length > 0) {
        const ids = await cdi.write(claim.ref.uid, cdiDevices);
        for (const device of taken) {
          const id = ids.get(device.device);
          if (id !== undefined) device.cdiDeviceIds.push(id);
        }
      }
      if (cdi.writeMetadata !== undefined) {
        const published = await cdi.writeMetadata(
          { ...claim.ref, podClaimName: claim.podClaimName },
          this.#options.driverName,
          taken.map((d) => metadataInput(d, attributes.get(d.device))),
        );
        for (const device of taken) {
          const entry = published.get(device.device);
          if (entry === undefined) continue;
          device.metadataFile = entry.file;
          if (entry.cdiDeviceId !== undefined) device.cdiDeviceIds.push(entry.cdiDeviceId);
        }
      }
      podClaims = await names;
    } catch (err) {
      await this.#release(claim.ref.uid, taken, signal).catch((releaseErr: unknown) => {
        this.#options.logger.error({ claim: what, err: releaseErr }, "releasing after a failed prepare failed");
      });
      throw err;
    }
    return {
      version: 1,
      claim: claim.ref,
      ...(claim.podClaimName !== undefined && { podClaimName: claim.podClaimName }),
      pod,
      ...(podClaims !== undefined && { podClaims: [...podClaims] }),
      devices: taken,
    };
  }

  /**
   * Writes again the files a prepared claim's containers need that live on a
   * tmpfs and so go with a reboot, which the kubelet's re-prepare then finds
   * missing: the CDI specs (same names, same ids; rewriting an intact one
   * changes nothing) and a device metadata file that is gone or does not
   * read back (generation 1, as at prepare: the attach that follows adds the
   * pod's interface). A metadata file that reads back is left alone: it may
   * hold that interface.
   */
  async restore(value: unknown, what: string): Promise<void> {
    const plan = parseClaimPlan(value, what);
    const { cdi, driverName } = this.#options;
    const cdiDevices = cdiDevicesOf(plan.devices);
    if (cdiDevices.length > 0) await cdi.write(plan.claim.uid, cdiDevices);
    if (cdi.writeMetadata === undefined) return;
    const devices = plan.devices.filter((d) => d.metadataFile !== undefined);
    if (devices.length === 0) return;
    await cdi.writeMetadata(
      { ...plan.claim, podClaimName: plan.podClaimName },
      driverName,
      devices.map((d) => metadataInput(d, this.#options.devices.find(d.device, driverName)?.attributes)),
      { keepIntact: true },
    );
  }

  /** Releases what prepare took; `plan` is undefined when prepare never finished. */
  async unprepare(claimUid: string, plan: unknown, signal: AbortSignal): Promise<void> {
    const devices = plan === undefined ? [] : parseClaimPlan(plan, `claim ${claimUid}`).devices;
    await this.#release(claimUid, devices, signal);
  }

  /** The device's plan, from the inventory and the claim alone: nothing is taken and nothing read from outside. */
  #planDevice(
    claim: ClaimForPrepare,
    result: ClaimForPrepare["results"][number],
    what: string,
  ): { plan: DevicePlan; device: PreparableDevice; config: ResolvedNetworkConfig; where: string } {
    const { poolName, driverName } = this.#options;
    const where = `device ${result.device} (request ${result.request})`;
    if (result.pool !== poolName) {
      throw new ClaimPrepareError("CLAIM_WRONG_POOL", what, `${where} was allocated from pool ${result.pool}, but this node publishes pool ${poolName}`);
    }
    const device = this.#options.devices.find(result.device, driverName);
    if (device === undefined) {
      throw new ClaimPrepareError(
        "CLAIM_DEVICE_MISSING",
        what,
        `${where} is not on this node any more; delete the pod so the scheduler can allocate another device`,
      );
    }
    const resolved = resolveRequestConfig(claim.config, { driverName, request: result.request });
    if (!resolved.ok) {
      throw new ClaimPrepareError("CLAIM_INVALID_CONFIG", what, `invalid NetworkConfig for ${where}: ${resolved.problems.map((p) => `${p.field}: ${p.message}`).join("; ")}`);
    }
    const config = resolved.config;
    const plan: DevicePlan = {
      request: result.request,
      pool: result.pool,
      device: result.device,
      mode: config.mode,
      // The current MAC is not an identity (a pod may change it); the PCI address is.
      identity: {
        name: device.ifName,
        ifindex: device.ifIndex,
        ...(device.pciAddress !== undefined ? { pciAddress: device.pciAddress } : {}),
      },
      interface: {
        ...(config.interface.name !== undefined ? { name: config.interface.name } : {}),
        ...(config.interface.mtu !== undefined ? { mtu: config.interface.mtu } : {}),
        ...(config.interface.hardwareAddress !== undefined ? { hardwareAddress: config.interface.hardwareAddress } : {}),
        addresses: [...config.interface.addresses],
        sysctls: { ...config.interface.sysctls },
      },
      routes: [...config.routes],
      cdiDeviceIds: [],
      ...(device.resourceName !== undefined ? { resourceName: device.resourceName } : {}),
      ...(result.shareID !== undefined ? { shareID: result.shareID } : {}),
    };
    if (config.mode === "multus" && device.resourceName === undefined) {
      throw new ClaimPrepareError("CLAIM_INVALID_CONFIG", what, `${where} asks for mode "multus", but the device publishes no k8s.cni.cncf.io/resourceName`);
    }
    const child = childOf(config, device, `${where}: ${config.sources.join(", ") || "no NetworkConfig"}`, what);
    if (child !== undefined) {
      plan.child = child.interface;
      const mac = config.interface.hardwareAddress ?? (child.macPolicy === "stable" ? stableMac(`${claim.ref.uid}/${result.request}/${result.device}`) : undefined);
      if (mac !== undefined) plan.interface.hardwareAddress = mac;
    } else if (device.rdma !== undefined) {
      // A child has no RDMA device of its own; a whole device takes its own along.
      plan.rdma = { device: device.rdma.device, charDevices: [...device.rdma.charDevices] };
    }
    return { plan, device, config, where };
  }

  /** A child kind the node's kernel lacks fails here, rather than on every sandbox attempt. */
  async #checkChildKinds(plans: readonly DevicePlan[], what: string): Promise<void> {
    const { kernelHasLinkKind } = this.#options;
    if (kernelHasLinkKind === undefined) return;
    for (const plan of plans) {
      const kind = plan.child?.kind;
      if (kind === undefined || kind === "macvlan" || (await kernelHasLinkKind(kind))) continue;
      throw new ClaimPrepareError(
        "CLAIM_INVALID_CONFIG",
        what,
        `device ${plan.device} (request ${plan.request}) asks for an ${kind} child, but this node's kernel has no ${kind}; ask for child.kind macvlan, or have the node load the ${kind} module`,
      );
    }
  }

  /**
   * The attach's naming rule (interface-names.ts), as far as prepare can know the pod: a
   * configured name that the pod's `k8s.v1.cni.cncf.io/networks` annotation gives a Multus
   * network (or that two devices of the claim ask for) fails here, where the user sees it
   * on the claim, rather than on every sandbox attempt. The pod is read only when a device
   * netclaim attaches configures its name; without one, netclaim picks a free name at attach.
   * Resolves with the claims the pod consumes when it read the pod.
   */
  async #checkInterfaceNames(plans: readonly DevicePlan[], pod: ClaimPlan["pod"], what: string, signal: AbortSignal): Promise<readonly string[] | undefined> {
    const native = plans.filter((p) => p.mode === "native");
    if (!native.some((p) => p.interface.name !== undefined)) return undefined;
    const read = await this.#readPod(pod, what, signal);
    const multus = read === undefined ? new Map<string, string>() : multusInterfaceOwners(read.annotations, pod.namespace);
    const naming = assignInterfaceNames(
      native.map((p) => ({ claim: what, request: p.request, device: p.device, requestedName: p.interface.name })),
      multus,
    );
    if (naming.ok) return read?.claims;
    throw new ClaimPrepareError(
      "INTERFACE_NAME_TAKEN",
      what,
      multus.has(naming.name)
        ? `${naming.message}, which the pod's ${MULTUS_NETWORKS_ANNOTATION} annotation asks for; ${MULTUS_RENAME_HINT}, then create the pod again`
        : `${naming.message}; give each device its own interface.name in the claim's NetworkConfig`,
    );
  }

  /** The claim's pod as the API server has it now; undefined when it cannot be read or was replaced (the attach checks the names then). */
  async #readPod(pod: ClaimPlan["pod"], what: string, signal: AbortSignal): Promise<{ annotations: Readonly<Record<string, string>>; claims: readonly string[] } | undefined> {
    const { pods, logger } = this.#options;
    if (pods === undefined) return undefined;
    try {
      const found = await pods.get(pod.namespace, pod.name, signal);
      if (found.uid === pod.uid) return found;
      logger.info({ claim: what, pod: `${pod.namespace}/${pod.name}`, uid: found.uid }, "the pod the claim is reserved for was replaced; not checking its interface names at prepare");
    } catch (err) {
      if (signal.aborted) throw err;
      logger.warn({ claim: what, pod: `${pod.namespace}/${pod.name}`, err: errorMessage(err) }, "cannot read the pod's Multus networks; its interface names are checked when its sandbox starts");
    }
    return undefined;
  }

  /**
   * Everything that can refuse the NAD (namespace, policy, config) runs
   * before the intent is recorded and the lease journaled, so a refusal
   * leaves nothing behind and no plugin has run.
   */
  async #leaseAddresses(
    claim: ClaimForPrepare,
    config: ResolvedNetworkConfig,
    plan: DevicePlan,
    what: string,
    where: string,
    signal: AbortSignal,
    recordIntent: () => Promise<void>,
  ): Promise<void> {
    const ipamFrom = config.ipamFrom;
    if (ipamFrom === undefined) return;
    const namespace = ipamFrom.namespace ?? claim.ref.namespace;
    if (namespace !== claim.ref.namespace && !this.#options.ipam.policy.allowCrossNamespace) {
      throw new ClaimPrepareError(
        "IPAM_NOT_ALLOWED",
        what,
        `${where}: ${config.ipamFromSetBy ?? "ipamFrom"}.ipamFrom.namespace is "${namespace}", not the claim's namespace "${claim.ref.namespace}"; ` +
          "a claim may only use NetworkAttachmentDefinitions of its own namespace unless cni.ipam.allowCrossNamespace is true in the agent configuration",
      );
    }
    const nadRef = `${namespace}/${ipamFrom.name}`;
    let nadConfig: string;
    try {
      nadConfig = await this.#options.nads.config(namespace, ipamFrom.name, signal);
    } catch (err) {
      throw new ClaimPrepareError("IPAM_FAILED", what, `cannot read NetworkAttachmentDefinition ${nadRef} named by ipamFrom for ${where}: ${errorMessage(err)}`, { cause: err });
    }
    let ipam: IpamConfig;
    try {
      ipam = this.#options.ipam.fromNad(nadConfig, nadRef);
    } catch (err) {
      const code = err instanceof CniError && err.code === "CNI_NOT_ALLOWED" ? "IPAM_NOT_ALLOWED" : "IPAM_FAILED";
      throw new ClaimPrepareError(code, what, `ipamFrom of ${where}: ${errorMessage(err)}`, { cause: err });
    }
    const containerId = `${claim.ref.uid}-${plan.device}`;
    const ifName = plan.interface.name ?? "net0";
    await recordIntent();
    let lease: IpamLease;
    try {
      // Journal the lease first: if we crash after the plugin allocated, unprepare still finds it.
      await this.#leases.put(containerId, { claimUid: claim.ref.uid, plugin: ipam.plugin, config: ipam.config, containerId, ifName });
      lease = await this.#options.ipam.allocate(ipam, { nadRef, containerId, ifName }, signal);
    } catch (err) {
      throw new ClaimPrepareError("IPAM_FAILED", what, `IPAM from ${nadRef} for ${where} failed: ${errorMessage(err)}`, { cause: err });
    }
    const addresses = lease.result.ips.map((ip) => ip.address);
    plan.ipam = { plugin: lease.plugin, config: lease.config, containerId, ifName, addresses };
    plan.interface.addresses = addresses;
    for (const route of lease.result.routes) {
      plan.routes.push({ destination: route.dst, ...(route.gw !== undefined ? { gateway: route.gw } : {}) });
    }
    const problems = routeProblems(plan.routes, addresses, "routes");
    if (problems.length > 0) {
      throw new ClaimPrepareError(
        "CLAIM_INVALID_CONFIG",
        what,
        `with the addresses ${addresses.join(", ")} leased from ${nadRef}, the routes of ${where} do not work: ${problems.map((p) => `${p.field}: ${p.message}`).join("; ")}`,
      );
    }
  }

  async #release(claimUid: string, devices: readonly DevicePlan[], signal: AbortSignal): Promise<void> {
    const failures: string[] = [];
    // Leases in the plan, and any journaled lease a crashed prepare left behind.
    const leases = new Map<string, Omit<IpamLease, "result">>();
    for (const device of devices) if (device.ipam !== undefined) leases.set(device.ipam.containerId, device.ipam);
    for (const [key, pending] of await this.#leases.list()) if (pending.claimUid === claimUid) leases.set(key, pending);
    for (const lease of leases.values()) {
      try {
        await this.#options.ipam.release(lease, signal);
        await this.#leases.delete(lease.containerId);
      } catch (err) {
        if (err instanceof CniError && err.code === "CNI_NOT_ALLOWED") {
          // Taken under a wider policy; running it now could act on the host, and
          // failing would block the pod's deletion for good, so it is left to the administrator.
          this.#options.logger.error({ claimUid, lease: lease.containerId, plugin: lease.plugin, config: lease.config, err: err.message }, "not releasing an IPAM lease the IPAM policy no longer allows; release it by hand");
          await this.#leases.delete(lease.containerId);
          continue;
        }
        failures.push(`IPAM lease ${lease.containerId}: ${errorMessage(err)}`);
      }
    }
    try {
      await this.#options.cdi.remove(claimUid);
    } catch (err) {
      failures.push(`CDI spec: ${errorMessage(err)}`);
    }
    if (failures.length > 0) throw new Error(`Cannot release claim ${claimUid} completely: ${failures.join("; ")}`);
  }
}

/**
 * The child to make of the device, when it is a shared parent attached
 * natively: the config's kind and mode, or macvlan in bridge mode, with a
 * stable MAC unless the config asks otherwise. A child asked of a device
 * allocated whole is refused: moving the device and making a child of it
 * are different things, and the DeviceClass chose the first.
 */
function childOf(config: ResolvedNetworkConfig, device: PreparableDevice, where: string, what: string): { interface: ChildInterface; macPolicy?: "stable" | "random" } | undefined {
  const asked = config.child;
  if (device.shared !== true) {
    if (Object.keys(asked).length === 0) return undefined;
    throw new ClaimPrepareError(
      "CLAIM_INVALID_CONFIG",
      what,
      `${where} sets child, but the device is allocated whole, not as a shared parent; remove child, or ask for a device of a shared-parent DeviceClass (the agent's device policy publishes a NIC as one with include[].share)`,
    );
  }
  if (config.mode === "multus") return undefined;
  const kind = asked.kind ?? "macvlan";
  // The merged config's mode fits its kind (config-merge.ts), so this parse only pairs them for the type.
  const child = childSchema.parse({ kind, mode: asked.mode ?? CHILD_MODES[kind][0] });
  return { interface: child, ...(kind === "macvlan" && { macPolicy: asked.macPolicy ?? "stable" }) };
}

/** A locally administered unicast MAC derived from `seed`: the same on every attach of one claim's child. */
export function stableMac(seed: string): string {
  const bytes = createHash("sha256").update(seed).digest().subarray(0, 6);
  bytes[0] = ((bytes[0] ?? 0) & 0xfc) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Whether attaching the device takes addresses from an IPAM plugin at prepare (ipamFrom, not through Multus). */
function leasesAddresses(config: ResolvedNetworkConfig): boolean {
  return config.mode !== "multus" && config.ipamFrom !== undefined;
}

/**
 * A device twice in one claim: only a shared parent can be, allocated to two
 * of its requests. One pod then gets one child per claim of a parent: the
 * attachment (and its gate) is the claim's device.
 */
function refuseRepeatedDevices(plans: readonly DevicePlan[], what: string): void {
  const seen = new Map<string, string>();
  for (const plan of plans) {
    const first = seen.get(plan.device);
    if (first !== undefined) {
      throw new ClaimPrepareError(
        "CLAIM_INVALID_CONFIG",
        what,
        `device ${plan.device} is allocated to both request ${first} and request ${plan.request}; one claim takes one child of a shared parent: ask for the second interface in a claim of its own, or keep the requests apart with a distinctAttribute constraint`,
      );
    }
    seen.set(plan.device, plan.request);
  }
}

/** The devices that need a CDI spec: RDMA character devices, or the attach gate of a device netclaim attaches. */
function cdiDevicesOf(devices: readonly DevicePlan[]): CdiDevice[] {
  // Devices handed to Multus are attached by the runtime's CNI call, which fails the sandbox itself.
  return devices.flatMap((d): CdiDevice[] => (d.rdma === undefined && d.mode !== "native" ? [] : [{ name: d.device, rdmaDevice: d.rdma?.device, gated: d.mode === "native" }]));
}

function metadataInput(device: DevicePlan, attributes: PreparableDevice["attributes"]): MetadataDeviceInput {
  return { request: device.request, pool: device.pool, name: device.device, attributes };
}

/** A netdev can be in one network namespace only, so a claim serves exactly one pod. */
function onlyPod(claim: ClaimForPrepare, what: string): ClaimPlan["pod"] {
  const pods = claim.reservedFor.filter((c) => c.resource === "pods" && (c.apiGroup ?? "") === "");
  if (pods.length !== 1 || claim.reservedFor.length !== 1) {
    throw new ClaimPrepareError(
      "CLAIM_NOT_RESERVED",
      what,
      `is reserved for ${claim.reservedFor.length} consumer(s) (${claim.reservedFor.map((c) => `${c.resource}/${c.name}`).join(", ") || "none"}); a network device can only be in one pod, so use one claim per pod (a ResourceClaimTemplate)`,
    );
  }
  const pod = pods[0];
  if (pod === undefined) throw new ClaimPrepareError("CLAIM_NOT_RESERVED", what, "is not reserved for a pod");
  return { namespace: claim.ref.namespace, name: pod.name, uid: pod.uid };
}
