/**
 * Read-only access to a sysfs/procfs tree under a configurable root, so tests
 * and `netclaim devices --root` read fixture trees laid out exactly like the
 * kernel's. Missing or unreadable attributes are normal in sysfs (a down link
 * has no speed, a VF has no sriov_totalvfs) and read as `undefined`; only a
 * missing /sys/class/net is an error.
 *
 * Most reads are synchronous: the kernel makes a sysfs attribute on the spot
 * in microseconds, while an asynchronous read costs four thread-pool round
 * trips, a FileHandle and as many wake-ups of the event loop (a full scan of
 * 262 veths: 144 ms of CPU that way, 62 ms with these reads synchronous, in
 * make bench-inventory-scan). Directory
 * listings, symlinks and the attributes in SYNC_ATTRIBUTES are read on the
 * event loop. Every other attribute goes to the thread pool, since its read
 * may wait for a lock another task holds for long: `speed`, `duplex` and the
 * `phys_*` attributes retry until they get the RTNL lock, which a device
 * moving between namespaces holds for milliseconds, `sriov_numvfs` waits for
 * the PCI device's lock, which a write creating VFs holds for seconds.
 */
import { readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join, relative, sep } from "node:path";

/**
 * Attributes whose read takes no lock another task could hold for long: the
 * netdev fields under RCU or a reader lock (net/core/net-sysfs.c), the PCI
 * function's cached identity and NUMA node, and procfs route tables (RCU).
 */
const SYNC_ATTRIBUTES: ReadonlySet<string> = new Set([
  "ifindex", "address", "mtu", "operstate", "type", "dev_port",
  "vendor", "device", "subsystem_vendor", "subsystem_device", "numa_node", "sriov_totalvfs",
  "ibdev", "dev", "route", "ipv6_route",
]);

export class SysfsRoot {
  readonly root: string;
  #rootReal: string | undefined;

  constructor(root = "/") {
    this.root = root;
  }

  /** The host path of a path given as seen from inside the root ("/sys/..."). */
  path(inside: string): string {
    return join(this.root, inside);
  }

  /** A trimmed attribute, or undefined when absent or unreadable (EINVAL on a down link). */
  async text(inside: string): Promise<string | undefined> {
    const path = this.path(inside);
    try {
      return (SYNC_ATTRIBUTES.has(basename(path)) ? readFileSync(path, "utf8") : await readFile(path, "utf8")).trim();
    } catch {
      return undefined;
    }
  }

  /** A decimal or 0x-prefixed integer attribute. */
  async int(inside: string): Promise<number | undefined> {
    const raw = await this.text(inside);
    if (raw === undefined || raw === "") return undefined;
    const value = raw.startsWith("0x") ? Number.parseInt(raw.slice(2), 16) : Number.parseInt(raw, 10);
    return Number.isSafeInteger(value) ? value : undefined;
  }

  /** The last component of a symlink's target (a driver's name, a PF's address). */
  linkName(inside: string): string | undefined {
    try {
      return basename(readlinkSync(this.path(inside)));
    } catch {
      return undefined;
    }
  }

  /** The resolved path, as seen from inside the root ("/sys/devices/pci0000:3a/..."). */
  resolve(inside: string): string | undefined {
    try {
      // realpath(3) itself: Node's own walks the path in JavaScript, a system call and some garbage per component.
      this.#rootReal ??= realpathSync.native(this.root);
      return `/${relative(this.#rootReal, realpathSync.native(this.path(inside))).split(sep).join("/")}`;
    } catch {
      return undefined;
    }
  }

  list(inside: string): string[] {
    try {
      return readdirSync(this.path(inside)).sort();
    } catch {
      return [];
    }
  }

  /** Like list, but a missing directory is an error the caller reports. */
  listRequired(inside: string): string[] {
    return readdirSync(this.path(inside)).sort();
  }
}
