/**
 * Read-only access to a sysfs/procfs tree under a configurable root, so tests
 * and `netclaim devices --root` read fixture trees laid out exactly like the
 * kernel's. Missing or unreadable attributes are normal in sysfs (a down link
 * has no speed, a VF has no sriov_totalvfs) and read as `undefined`; only a
 * missing /sys/class/net is an error.
 */
import { readdir, readFile, readlink, realpath } from "node:fs/promises";
import { basename, join, relative, sep } from "node:path";

export class SysfsRoot {
  readonly root: string;
  #rootReal: Promise<string> | undefined;

  constructor(root = "/") {
    this.root = root;
  }

  /** The host path of a path given as seen from inside the root ("/sys/..."). */
  path(inside: string): string {
    return join(this.root, inside);
  }

  /** A trimmed attribute, or undefined when absent or unreadable (EINVAL on a down link). */
  async text(inside: string): Promise<string | undefined> {
    try {
      return (await readFile(this.path(inside), "utf8")).trim();
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
  async linkName(inside: string): Promise<string | undefined> {
    try {
      return basename(await readlink(this.path(inside)));
    } catch {
      return undefined;
    }
  }

  /** The resolved path, as seen from inside the root ("/sys/devices/pci0000:3a/..."). */
  async resolve(inside: string): Promise<string | undefined> {
    try {
      this.#rootReal ??= realpath(this.root);
      const [resolved, rootReal] = await Promise.all([realpath(this.path(inside)), this.#rootReal]);
      return `/${relative(rootReal, resolved).split(sep).join("/")}`;
    } catch {
      return undefined;
    }
  }

  async list(inside: string): Promise<string[]> {
    try {
      return (await readdir(this.path(inside))).sort();
    } catch {
      return [];
    }
  }

  /** Like list, but a missing directory is an error the caller reports. */
  async listRequired(inside: string): Promise<string[]> {
    return (await readdir(this.path(inside))).sort();
  }
}
