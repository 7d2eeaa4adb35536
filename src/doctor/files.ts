/**
 * Host paths the agent needs: what is at a path, whether a unix socket
 * answers, and the CDI spec directory, where prepare writes a spec per
 * device (RDMA character devices, the attach gate) that the runtime reads.
 */
import { lstat, open, rm } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { errorMessage } from "../common/errors.ts";
import { fail, pass, type Check, type CheckResult } from "./check.ts";

export const CDI_CHECK = "CDI spec dir";

export type PathKind = "missing" | "directory" | "socket" | "other";

export async function pathKind(path: string): Promise<PathKind> {
  try {
    const stat = await lstat(path);
    return stat.isDirectory() ? "directory" : stat.isSocket() ? "socket" : "other";
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    throw err;
  }
}

/** Connects to a unix socket and hangs up: something listens there. */
export function connectOnce(socketPath: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath, signal });
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}

export function cdiChecks(specDir: string): Check[] {
  return [{ name: CDI_CHECK, run: () => checkCdiDir(specDir) }];
}

const CDI_FIX = "mount the runtime's CDI spec directory into the agent's pod at the same path and set cdi.specDir (--cdi-dir) to it; containerd and CRI-O read /etc/cdi and /var/run/cdi (docs/install.md)";

/** Exists, is a directory, and takes a file: a dot-file without .json/.yaml, which no CDI reader loads. */
export async function checkCdiDir(specDir: string): Promise<CheckResult> {
  const kind = await pathKind(specDir);
  if (kind === "missing") return fail(CDI_CHECK, `${specDir} does not exist`, CDI_FIX);
  if (kind !== "directory") return fail(CDI_CHECK, `${specDir} is not a directory`, CDI_FIX);
  const probe = join(specDir, `.netclaim-doctor-${String(process.pid)}`);
  try {
    const file = await open(probe, "wx", 0o600);
    await file.close();
  } catch (err) {
    return fail(CDI_CHECK, `cannot write in ${specDir}: ${errorMessage(err)}`, `make ${specDir} writable for the agent (a read-only mount?); ${CDI_FIX}`);
  } finally {
    await rm(probe, { force: true });
  }
  return pass(CDI_CHECK, `${specDir} is writable`);
}
