/**
 * Read-only access to a sysfs/procfs tree under a configurable root, so tests
 * and `netclaim devices --root` read fixture trees laid out exactly like the
 * kernel's. Missing or unreadable attributes are normal in sysfs (a down link
 * has no speed, a VF has no sriov_totalvfs) and read as `undefined`; only a
 * missing /sys/class/net is an error.
 *
 * Reads are synchronous: a sysfs attribute is made by the kernel on the spot
 * in microseconds, while an asynchronous read costs four thread-pool round
 * trips and a FileHandle (a scan of 262 veths took 210 ms of the event loop's
 * CPU that way, about a fifth of it synchronously). The exception is the few
 * attributes whose read waits for the RTNL lock (RTNL_ATTRIBUTES), which a
 * device moving between namespaces holds for milliseconds: those go to the
 * thread pool, and give the event loop a turn once per device.
 */
import { readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join, relative, sep } from "node:path";

/** Netdev attributes the kernel reads under the RTNL lock (net/core/net-sysfs.c), retrying until it has it. */
const RTNL_ATTRIBUTES: ReadonlySet<string> = new Set(["speed", "duplex", "phys_port_id", "phys_port_name", "phys_switch_id"]);

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
      return (RTNL_ATTRIBUTES.has(basename(path)) ? await readFile(path, "utf8") : readFileSync(path, "utf8")).trim();
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
  linkName(inside: string): Promise<string | undefined> {
    try {
      return Promise.resolve(basename(readlinkSync(this.path(inside))));
    } catch {
      return Promise.resolve(undefined);
    }
  }

  /** The resolved path, as seen from inside the root ("/sys/devices/pci0000:3a/..."). */
  resolve(inside: string): Promise<string | undefined> {
    try {
      this.#rootReal ??= realpathSync(this.root);
      return Promise.resolve(`/${relative(this.#rootReal, realpathSync(this.path(inside))).split(sep).join("/")}`);
    } catch {
      return Promise.resolve(undefined);
    }
  }

  list(inside: string): Promise<string[]> {
    try {
      return Promise.resolve(readdirSync(this.path(inside)).sort());
    } catch {
      return Promise.resolve([]);
    }
  }

  /** Like list, but a missing directory is an error the caller reports. */
  listRequired(inside: string): Promise<string[]> {
    try {
      return Promise.resolve(readdirSync(this.path(inside)).sort());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
