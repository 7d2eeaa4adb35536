/**
 * The kubelet's side of DRA: its plugin directories, and this agent's
 * registration and DRA sockets in them, at the paths the agent itself uses
 * (dra/sockets.ts; with POD_UID they carry the pod's UID). Run on the host,
 * without a pod UID, the first per-pod registration socket of the driver
 * names the agent's pod.
 */
import { readdir } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { errorMessage } from "../common/errors.ts";
import { socketPaths, type SocketPaths } from "../dra/index.ts";
import { fail, pass, type Check, type CheckResult } from "./check.ts";
import { connectOnce, pathKind } from "./files.ts";

export const KUBELET_DIRS_CHECK = "kubelet plugin dirs";
export const REGISTRATION_CHECK = "kubelet registration";

export interface KubeletCheckOptions {
  readonly kubeletRootDir: string;
  readonly driver: string;
  readonly podUID?: string | undefined;
}

export function kubeletChecks(options: KubeletCheckOptions): Check[] {
  return [
    { name: KUBELET_DIRS_CHECK, run: () => checkKubeletDirs(options) },
    { name: REGISTRATION_CHECK, run: (signal) => checkRegistration(options, signal) },
  ];
}

const MOUNT_FIX = "mount the kubelet's plugins/ and plugins_registry/ into the agent's pod at their host paths and set kubelet.rootDir (--kubelet-dir) to the kubelet's --root-dir (docs/install.md)";
const NOT_RUNNING = "the agent is not running here or has not started yet: kubectl -n <namespace> logs ds/netclaim-agent";

export async function checkKubeletDirs(options: KubeletCheckOptions): Promise<CheckResult> {
  const paths = socketPaths(options);
  const dirs = [dirname(paths.registration), dirname(dirname(paths.dra))];
  for (const dir of dirs) {
    const kind = await pathKind(dir);
    if (kind !== "directory") return fail(KUBELET_DIRS_CHECK, `${dir} ${kind === "missing" ? "does not exist" : "is not a directory"}`, MOUNT_FIX);
  }
  return pass(KUBELET_DIRS_CHECK, dirs.join(" and "));
}

export async function checkRegistration(options: KubeletCheckOptions, signal: AbortSignal): Promise<CheckResult> {
  const paths = options.podUID === undefined ? await onHost(options) : socketPaths(options);
  for (const [what, path] of [["registration", paths.registration], ["DRA", paths.dra]] as const) {
    const kind = await pathKind(path);
    if (kind === "missing") return fail(REGISTRATION_CHECK, `no ${what} socket at ${path}`, NOT_RUNNING);
    if (kind !== "socket") return fail(REGISTRATION_CHECK, `${path} is not a socket`, `remove ${path}: the agent creates its sockets itself`);
    try {
      await connectOnce(path, signal);
    } catch (err) {
      return fail(REGISTRATION_CHECK, `nothing listens on ${path} (${errorMessage(err)}): an agent that was killed left it`, `${NOT_RUNNING}; a restarted agent removes sockets nobody listens on`);
    }
  }
  return pass(REGISTRATION_CHECK, `${paths.registration} and ${paths.dra} answer`);
}

/** The sockets without a pod UID if they are there, else those of the first agent pod with sockets. */
async function onHost(options: KubeletCheckOptions): Promise<SocketPaths> {
  const plain = socketPaths(options);
  if ((await pathKind(plain.registration)) !== "missing") return plain;
  const prefix = `${options.driver}-`;
  const suffix = "-reg.sock";
  const names = await readdir(dirname(plain.registration)).catch(() => [] as string[]);
  const first = names.filter((name) => name.startsWith(prefix) && name.endsWith(suffix)).sort()[0];
  return first === undefined ? plain : socketPaths({ ...options, podUID: basename(first).slice(prefix.length, -suffix.length) });
}
