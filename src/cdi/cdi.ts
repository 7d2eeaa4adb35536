/**
 * CDI specs: one CDI device per allocated netclaim device, with what a
 * container that uses it needs from the host:
 * - the character devices of an RDMA device (/dev/infiniband/uverbsN,
 *   umadN, issmN and rdma_cm), found through sysfs;
 * - the device's attach gate (engine/attach-gate.ts), bind-mounted
 *   read-only, so the container cannot be created before the device is in
 *   its pod.
 * One spec file per device, written to a temporary name and renamed, so a
 * runtime reading the CDI directory never sees half a spec.
 *
 * Specs are written when the kubelet prepares a claim (claims/preparer.ts,
 * wired by agent/claim-wiring.ts), not when the engine attaches: this
 * module sits beside claims/, above inventory/ (which finds the char
 * devices) and engine/ (whose EngineError, code ENGINE_CDI, its failures
 * still are). It never needs the gate's location: the caller passes the
 * host path, from engine's attachGatePath.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { access, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { EngineError } from "../engine/index.ts";
import { rdmaCharNodes, type RdmaCharNode, type SysfsRoot } from "../inventory/index.ts";

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
  /** The sysfs reader (root "/" on a node; a fixture tree in tests). */
  sysfs: SysfsRoot;
  /** devfs root ("/dev"). */
  dev: string;
}

/**
 * The char devices of RDMA device `ibdev` (mlx5_0), as inventory finds them
 * (rdmaCharNodes): its uverbs/umad/issm nodes plus the shared rdma_cm, each
 * with the major:minor sysfs gives it. Each must exist under the devfs root.
 */
export async function rdmaCharDevices(ibdev: string, roots: RdmaRoots): Promise<CharDevice[]> {
  const out: CharDevice[] = [];
  for (const node of await rdmaCharNodes(roots.sysfs, ibdev)) {
    out.push(await charDevice(ibdev, node, roots));
  }
  if (!out.some((d) => /\/uverbs\d+$/.test(d.path))) {
    throw cdiError(ibdev, "find char devices", `no uverbs device in ${roots.sysfs.path("/sys/class/infiniband_verbs")} belongs to ${ibdev}`);
  }
  return out;
}

async function charDevice(ibdev: string, { name: node, sysfsDir }: RdmaCharNode, roots: RdmaRoots): Promise<CharDevice> {
  const devFile = roots.sysfs.path(`${sysfsDir}/dev`);
  const text = await roots.sysfs.text(`${sysfsDir}/dev`);
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
export function writeCdiSpec(specDir: string, name: string, edits: CdiDeviceEdits): string {
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
  try {
    writeFileAtomically(file, `${JSON.stringify(spec, null, 2)}\n`);
  } catch (err) {
    throw cdiError(name, "write CDI spec", `cannot write ${file}: ${(err as Error).message}`, err);
  }
  return file;
}

/**
 * Writes `content` to a temporary name beside `file` and renames it, so a
 * reader (a runtime scanning its CDI directory) sees the old file or the
 * new one, never half of one, whenever the agent dies. No fsync: these files
 * belong to this boot (the runtime's CDI directory and the agent's runtime
 * directory are on a tmpfs), and the kubelet's prepare after a reboot writes
 * them again (claims/preparer.ts restore). Synchronous: without an fsync the
 * calls take tens of microseconds in all, where each round trip through the
 * thread pool took 0.3 to 1 ms on a busy node, on every pod start's prepare
 * (bench-nri-attach). Creates the directory: after a reboot it may not
 * exist yet.
 */
export function writeFileAtomically(file: string, content: string): void {
  const temp = `${file}.tmp-${process.pid}`;
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
    writeFileSync(temp, content, { mode: 0o644 });
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}

/** Removes the spec of `name`; a missing one is fine. */
export async function removeCdiSpec(specDir: string, name: string): Promise<void> {
  await rm(specPath(specDir, name), { force: true });
}

function specPath(specDir: string, name: string): string {
  // CDI file names: <vendor>-<class>_<anything>.json; ':' is not portable in names.
  return join(specDir, `${CDI_KIND.replace("/", "-")}_${name.replaceAll(":", "_")}.json`);
}

function cdiError(device: string, step: string, message: string, cause?: unknown): EngineError {
  return new EngineError("ENGINE_CDI", { attachment: "-", device, step }, message, cause === undefined ? undefined : { cause });
}
