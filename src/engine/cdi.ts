/**
 * CDI specs: one CDI device per allocated netclaim device, with what a
 * container that uses it needs from the host:
 * - the character devices of an RDMA device (/dev/infiniband/uverbsN,
 *   umadN, issmN and rdma_cm), found through sysfs;
 * - the device's attach gate (attach-gate.ts), bind-mounted read-only, so
 *   the container cannot be created before the device is in its pod.
 * One spec file per device, written to a temporary name, fsynced and
 * renamed, so a runtime reading the CDI directory never sees half a spec.
 */
import { access, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { EngineError } from "./errors.ts";

export const CDI_VERSION = "0.6.0";
export const CDI_KIND = "netclaim.dev/device";
/** Where a container finds the attach gate of DRA device `<name>`. */
export const GATE_CONTAINER_DIR = "/run/netclaim/devices";
const CDI_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;

export interface CharDevice {
  /** Path in the container and on the host (/dev/infiniband/uverbs0). */
  path: string;
  major: number;
  minor: number;
}

export interface RdmaRoots {
  /** sysfs root ("/sys" on a node; a fixture tree in tests). */
  sysfs: string;
  /** devfs root ("/dev"). */
  dev: string;
}

/**
 * The char devices of RDMA device `ibdev` (mlx5_0): each uverbs/umad/issm
 * node whose sysfs `ibdev` names it, plus the shared rdma_cm. Each must
 * exist under the devfs root.
 */
export async function rdmaCharDevices(ibdev: string, roots: RdmaRoots): Promise<CharDevice[]> {
  const out: CharDevice[] = [];
  for (const cls of ["infiniband_verbs", "infiniband_mad"]) {
    const dir = join(roots.sysfs, "class", cls);
    for (const node of (await listDir(dir)).sort()) {
      const owner = await readTrimmed(join(dir, node, "ibdev"));
      if (owner !== ibdev) continue;
      out.push(await charDevice(ibdev, join(dir, node, "dev"), node, roots));
    }
  }
  if (!out.some((d) => d.path.endsWith("/rdma_cm"))) {
    out.push(await charDevice(ibdev, join(roots.sysfs, "class", "misc", "rdma_cm", "dev"), "rdma_cm", roots));
  }
  if (!out.some((d) => /\/uverbs\d+$/.test(d.path))) {
    throw cdiError(ibdev, "find char devices", `no uverbs device in ${join(roots.sysfs, "class", "infiniband_verbs")} belongs to ${ibdev}`);
  }
  return out;
}

async function charDevice(ibdev: string, devFile: string, node: string, roots: RdmaRoots): Promise<CharDevice> {
  const text = await readTrimmed(devFile);
  const m = text === undefined ? null : /^(\d+):(\d+)$/.exec(text);
  if (m?.[1] === undefined || m[2] === undefined) throw cdiError(ibdev, "find char devices", `${devFile} does not hold "major:minor"`);
  try {
    await access(join(roots.dev, "infiniband", node));
  } catch {
    throw cdiError(ibdev, "find char devices", `${join(roots.dev, "infiniband", node)} does not exist`);
  }
  return { path: `/dev/infiniband/${node}`, major: Number(m[1]), minor: Number(m[2]) };
}

/** The fully qualified CDI device name a runtime resolves ("netclaim.dev/device=<name>"). */
export function cdiDeviceId(name: string): string {
  return `${CDI_KIND}=${name}`;
}

/** What a container using one device gets from the host. */
export interface CdiDeviceEdits {
  charDevices: readonly CharDevice[];
  /** The device's attach gate: its host path, mounted at GATE_CONTAINER_DIR/<device>. */
  gate?: { hostPath: string; device: string };
}

/** Writes (atomically) the spec exposing `edits` as CDI device `name`; returns its path. */
export async function writeCdiSpec(specDir: string, name: string, edits: CdiDeviceEdits): Promise<string> {
  if (!CDI_NAME.test(name)) throw cdiError(name, "write CDI spec", `"${name}" is not a valid CDI device name`);
  const { charDevices, gate } = edits;
  const containerEdits = {
    ...(charDevices.length > 0 && { deviceNodes: charDevices.map((d) => ({ path: d.path, type: "c", major: d.major, minor: d.minor, permissions: "rw" })) }),
    ...(gate !== undefined && {
      mounts: [{ hostPath: gate.hostPath, containerPath: `${GATE_CONTAINER_DIR}/${gate.device}`, type: "bind", options: ["bind", "ro", "nosuid", "nodev", "noexec"] }],
    }),
  };
  const spec = { cdiVersion: CDI_VERSION, kind: CDI_KIND, devices: [{ name, containerEdits }] };
  const file = specPath(specDir, name);
  const temp = `${file}.tmp-${process.pid}`;
  try {
    // The runtime reads /var/run/cdi, a tmpfs: after a reboot the directory may not exist yet.
    await mkdir(specDir, { recursive: true, mode: 0o755 });
    const handle = await open(temp, "w", 0o644);
    try {
      await handle.writeFile(`${JSON.stringify(spec, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw cdiError(name, "write CDI spec", `cannot write ${file}: ${(err as Error).message}`, err);
  }
  return file;
}

/** Removes the spec of `name`; a missing one is fine. */
export async function removeCdiSpec(specDir: string, name: string): Promise<void> {
  await rm(specPath(specDir, name), { force: true });
}

function specPath(specDir: string, name: string): string {
  // CDI file names: <vendor>-<class>_<anything>.json; ':' is not portable in names.
  return join(specDir, `${CDI_KIND.replace("/", "-")}_${name.replaceAll(":", "_")}.json`);
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

async function readTrimmed(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, "utf8")).trim();
  } catch {
    return undefined;
  }
}

function cdiError(device: string, step: string, message: string, cause?: unknown): EngineError {
  return new EngineError("ENGINE_CDI", { attachment: "-", device, step }, message, cause === undefined ? undefined : { cause });
}
