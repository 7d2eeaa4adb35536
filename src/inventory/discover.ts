/**
 * Discovery: every netdev in /sys/class/net with its link kind, enriched
 * with the facts of the PCI function behind it (ids, driver, NUMA, PCIe
 * root, SR-IOV role) and of the RDMA device on that function. Pure reads;
 * the result is sorted by interface name so callers can publish
 * deterministically.
 */
import type { NetDevice, PciFacts, RdmaFacts } from "./device.ts";
import { kindFromSysfs, type LinkKinds, type LinkKindSource } from "./link-kinds.ts";
import { rdmaCharNodes } from "./rdma-nodes.ts";
import { SysfsRoot } from "./sysfs.ts";
import { NetclaimError, errorMessage } from "../common/errors.ts";

export class DiscoveryError extends NetclaimError<"DISCOVERY_NO_SYSFS" | "DISCOVERY_NO_LINK_KINDS"> {}

export interface DiscoveryOptions {
  /** The kernel's link kinds (netlink on a node); without it, kinds come from what sysfs shows. */
  linkKinds?: LinkKindSource;
  /** An earlier discovery to take unchanged devices from, instead of reading them again. */
  earlier?: EarlierDiscovery;
}

/**
 * What an earlier discovery found, and which links changed since (their
 * link events named them). A device in it that is still listed, under the
 * same kind, and not named is taken as it was; one named, or new, is read.
 * Only what a link event follows can be trusted this way: a periodic full
 * discovery catches the rest (an RDMA device registered later, a PF's VF
 * count; for the latter, a VF that comes or goes has its PF read too).
 */
export interface EarlierDiscovery {
  readonly devices: readonly NetDevice[];
  readonly changed: ReadonlySet<string>;
}

const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const PCI_ROOT = /^pci([0-9a-f]{4}:[0-9a-f]{2})$/;

/** ARPHRD_* values (include/uapi/linux/if_arp.h) we name; others print as numbers. */
const LINK_TYPES: Readonly<Record<number, string>> = {
  1: "ether",
  32: "infiniband",
  772: "loopback",
  776: "sit",
  778: "gre",
  65534: "none",
};

export async function discoverNetDevices(sysfs: SysfsRoot, options: DiscoveryOptions = {}): Promise<NetDevice[]> {
  let names: string[];
  try {
    names = sysfs.listRequired("/sys/class/net");
  } catch (err) {
    throw new DiscoveryError("DISCOVERY_NO_SYSFS", `Cannot list network devices in ${sysfs.path("/sys/class/net")}`, {
      cause: err,
    });
  }
  // Read after the listing, so every listed link that still exists is in it.
  const kinds = options.linkKinds === undefined ? undefined : await readLinkKinds(options.linkKinds);
  const vfIndexes = new VfIndexes(sysfs);
  const read = (list: readonly string[]): Promise<(NetDevice | undefined)[]> => mapLimited(list, SCAN_CONCURRENCY, (name) => readNetDevice(sysfs, name, vfIndexes, kinds));
  const { earlier } = options;
  if (earlier === undefined) return present(await read(names));
  const before = new Map(earlier.devices.map((d) => [d.ifName, d]));
  const keep = new Map<string, NetDevice>();
  const stale: string[] = [];
  for (const name of names) {
    const device = before.get(name);
    if (device !== undefined && !earlier.changed.has(name) && (kinds === undefined || (kinds.has(name) && kinds.get(name) === device.kind))) keep.set(name, device);
    else stale.push(name);
  }
  const fresh = present(await read(stale));
  // A VF that came, went or changed changes its PF's facts (its VF count).
  const gone = earlier.devices.filter((d) => !keep.has(d.ifName));
  const pfs = new Set([...fresh, ...gone].flatMap((d) => (d.pci?.vf === undefined ? [] : [d.pci.vf.pfAddress])));
  const pfNames = [...keep.values()].filter((d) => d.pci !== undefined && pfs.has(d.pci.address)).map((d) => d.ifName);
  for (const name of pfNames) keep.delete(name);
  const devices = [...keep.values(), ...fresh, ...present(await read(pfNames))];
  return devices.sort((a, b) => (a.ifName < b.ifName ? -1 : a.ifName > b.ifName ? 1 : 0));
}

function present(devices: readonly (NetDevice | undefined)[]): NetDevice[] {
  return devices.filter((d): d is NetDevice => d !== undefined);
}

async function readLinkKinds(source: LinkKindSource): Promise<LinkKinds> {
  try {
    return await source();
  } catch (err) {
    // Without kinds the guard could not tell a veth from a NIC: fail the scan, never publish blind.
    throw new DiscoveryError("DISCOVERY_NO_LINK_KINDS", `Cannot read the kinds of network devices: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * Devices read at once. Most of a device's reads are synchronous (sysfs.ts);
 * the few left to the thread pool (speed, a PF's sriov_numvfs, uevent) may
 * wait for a kernel lock, and reading a thousand devices at once would queue
 * thousands of them for no gain in speed (libuv has 4 threads).
 */
const SCAN_CONCURRENCY = 16;

async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

async function readNetDevice(
  sysfs: SysfsRoot,
  ifName: string,
  vfIndexes: VfIndexes,
  kinds: LinkKinds | undefined,
): Promise<NetDevice | undefined> {
  // Listed but not in the later link dump: renamed or deleted in between. The
  // change's link event brings a rescan; until then its kind is unknown.
  if (kinds !== undefined && !kinds.has(ifName)) return undefined;
  const dir = `/sys/class/net/${ifName}`;
  const resolved = sysfs.resolve(dir);
  const master = sysfs.linkName(`${dir}/master`);
  const entries = sysfs.list(dir);
  const [ifIndex, mac, mtu, operState, type, speed, devPort] = await Promise.all([
    sysfs.int(`${dir}/ifindex`),
    sysfs.text(`${dir}/address`),
    sysfs.int(`${dir}/mtu`),
    sysfs.text(`${dir}/operstate`),
    sysfs.int(`${dir}/type`),
    sysfs.int(`${dir}/speed`),
    sysfs.int(`${dir}/dev_port`),
  ]);
  // A link that vanished between readdir and here is simply not there any more.
  if (resolved === undefined || ifIndex === undefined) return undefined;
  const kind = kinds === undefined ? await kindFromSysfs(sysfs, ifName, { entries, arphrd: type }) : kinds.get(ifName);
  const pciAddress = nearestPciAddress(resolved);
  const pci = pciAddress === undefined ? undefined : await readPciFacts(sysfs, pciAddress, resolved, vfIndexes);
  const netDriver = pci === undefined ? undefined : sysfs.linkName(`${dir}/device/driver`);
  const rdma = pciAddress === undefined ? undefined : await readRdmaFacts(sysfs, pciAddress);
  return {
    ifName,
    ifIndex,
    ...(mac !== undefined && mac !== "" ? { mac } : {}),
    ...(mtu !== undefined ? { mtu } : {}),
    ...(operState !== undefined ? { operState } : {}),
    linkType: type === undefined ? "unknown" : (LINK_TYPES[type] ?? String(type)),
    ...(speed !== undefined && speed > 0 ? { speedMbps: speed } : {}),
    virtual: resolved.startsWith("/sys/devices/virtual/"),
    ...(kind !== undefined ? { kind } : {}),
    ...(netDriver !== undefined && netDriver !== pci?.driver ? { netDriver } : {}),
    ...(master !== undefined ? { master } : {}),
    lowers: entries.filter((e) => e.startsWith("lower_")).map((e) => e.slice("lower_".length)),
    devPort: devPort ?? 0,
    ...(pci !== undefined ? { pci } : {}),
    ...(rdma !== undefined ? { rdma } : {}),
  };
}

/** The PCI function closest to the netdev in its device path (virtio sits below one). */
function nearestPciAddress(devicePath: string): string | undefined {
  return devicePath.split("/").filter((part) => PCI_ADDRESS.test(part)).at(-1);
}

/** "pci0000:3a" from /sys/devices/pci0000:3a/0000:3a:00.0/... */
function pcieRootOf(devicePath: string): string | undefined {
  const part = devicePath.split("/").find((p) => PCI_ROOT.test(p));
  return part;
}

async function readPciFacts(sysfs: SysfsRoot, address: string, netdevPath: string, vfIndexes: VfIndexes): Promise<PciFacts> {
  const dir = `/sys/bus/pci/devices/${address}`;
  const driver = sysfs.linkName(`${dir}/driver`);
  const pfAddress = sysfs.linkName(`${dir}/physfn`);
  const devicePath = sysfs.resolve(dir);
  const [vendor, device, subVendor, subDevice, numa, totalVfs, numVfs] = await Promise.all([
    sysfs.text(`${dir}/vendor`),
    sysfs.text(`${dir}/device`),
    sysfs.text(`${dir}/subsystem_vendor`),
    sysfs.text(`${dir}/subsystem_device`),
    sysfs.int(`${dir}/numa_node`),
    sysfs.int(`${dir}/sriov_totalvfs`),
    sysfs.int(`${dir}/sriov_numvfs`),
  ]);
  const vf = pfAddress === undefined ? undefined : vfIndexes.of(pfAddress).get(address);
  const pcieRoot = pcieRootOf(devicePath ?? netdevPath);
  return {
    address,
    vendorID: hexId(vendor),
    deviceID: hexId(device),
    ...(subVendor !== undefined ? { subsystemVendorID: hexId(subVendor) } : {}),
    ...(subDevice !== undefined ? { subsystemDeviceID: hexId(subDevice) } : {}),
    ...(driver !== undefined ? { driver } : {}),
    ...(numa !== undefined && numa >= 0 ? { numaNode: numa } : {}),
    ...(pcieRoot !== undefined ? { pcieRoot } : {}),
    ...(totalVfs !== undefined && totalVfs > 0 ? { sriov: { totalVfs, numVfs: numVfs ?? 0 } } : {}),
    ...(vf !== undefined && pfAddress !== undefined ? { vf: { pfAddress, index: vf } } : {}),
  };
}

/** sysfs prints ids as 0x15b3; we publish the four hex digits. */
function hexId(raw: string | undefined): string {
  if (raw === undefined) return "";
  return raw.toLowerCase().replace(/^0x/, "");
}

/**
 * VF address -> N of the PF's virtfnN link, read once per PF per scan: a PF
 * with 127 VFs would otherwise cost 127 readlinks for each of its VFs.
 */
class VfIndexes {
  readonly #sysfs: SysfsRoot;
  readonly #byPf = new Map<string, Map<string, number>>();

  constructor(sysfs: SysfsRoot) {
    this.#sysfs = sysfs;
  }

  of(pfAddress: string): Map<string, number> {
    let indexes = this.#byPf.get(pfAddress);
    if (indexes === undefined) {
      indexes = this.#read(pfAddress);
      this.#byPf.set(pfAddress, indexes);
    }
    return indexes;
  }

  #read(pfAddress: string): Map<string, number> {
    const pfDir = `/sys/bus/pci/devices/${pfAddress}`;
    const links = this.#sysfs.list(pfDir).filter((entry) => /^virtfn\d+$/.test(entry));
    const targets = links.map((entry) => this.#sysfs.linkName(`${pfDir}/${entry}`));
    const indexes = new Map<string, number>();
    links.forEach((entry, i) => {
      const target = targets[i];
      if (target !== undefined) indexes.set(target, Number.parseInt(entry.slice("virtfn".length), 10));
    });
    return indexes;
  }
}

/**
 * The RDMA device registered on the PCI function and the character devices a
 * pod needs for it (rdma-nodes.ts): its own uverbs, umad and issm nodes and
 * the shared rdma_cm.
 */
async function readRdmaFacts(sysfs: SysfsRoot, address: string): Promise<RdmaFacts | undefined> {
  const dir = `/sys/bus/pci/devices/${address}`;
  const [ibDevice] = sysfs.list(`${dir}/infiniband`);
  if (ibDevice === undefined) return undefined;
  const nodes = await rdmaCharNodes(sysfs, ibDevice, dir);
  return { device: ibDevice, charDevices: nodes.map((n) => `/dev/infiniband/${n.name}`).sort() };
}
