/**
 * Where IPAM plugins run: CNI_NETNS is an empty network namespace of
 * netclaim's own, never the host's, and the working directory is an empty
 * directory beside it (relative paths in a plugin's configuration land
 * there).
 *
 * Addresses are leased at prepare time, before the pod's namespace exists,
 * and the CNI skeleton requires CNI_NETNS for ADD. Pool allocators
 * (host-local, whereabouts, static) never enter it; a plugin that does
 * acts on an empty namespace instead of the node's. The plugin process
 * itself still runs in the agent's namespace: whereabouts must reach the
 * API server.
 *
 * Layout under `dir` (normally <runtimeDir>/ipam):
 *   netns  a file with the namespace bind-mounted on it (nsfs)
 *   work/  the plugins' working directory
 *
 * Opening the sandbox kills what plugins a previous agent left running
 * there (leftover-plugins.ts), before this agent runs any.
 *
 * The namespace is made once and reused by a restarted agent while the
 * mount lasts. After a container restart the file is still there (hostPath)
 * but the mount is gone with the old container's mount namespace, so it is
 * made again. A graceful stop unmounts it, so the directory can be removed.
 */
import { mkdir, open, stat, statfs } from "node:fs/promises";
import { constants } from "node:os";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { lastErrno, libc } from "../common/libc.ts";
import { onWorkerStop } from "../common/worker-exit.ts";
import { CniError } from "./errors.ts";
import type { NetnsWorkerReply } from "./ipam-netns-worker.ts";
import { killLeftoverPlugins, type LeftoverPlugin } from "./leftover-plugins.ts";

const WORKER_URL = new URL(`./ipam-netns-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** statfs f_type of the namespace filesystem: a file bind-mounted from /proc/<pid>/ns/. */
const NSFS_MAGIC = 0x6e736673;
const MNT_DETACH = 2;

const umount2 = libc.func("int umount2(const char *target, int flags)") as (target: string, flags: number) => number;

export class IpamSandbox {
  readonly netns: string;
  readonly workDir: string;
  /** The plugins a previous agent left running here, killed by open(). */
  readonly killedAtOpen: readonly LeftoverPlugin[];

  private constructor(dir: string, killedAtOpen: readonly LeftoverPlugin[]) {
    this.netns = join(dir, "netns");
    this.workDir = join(dir, "work");
    this.killedAtOpen = killedAtOpen;
  }

  /** Kills plugins left running in it, and reuses the namespace pinned under `dir`, or makes one. */
  static async open(dir: string): Promise<IpamSandbox> {
    const workDir = join(dir, "work");
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    const sandbox = new IpamSandbox(dir, await killLeftoverPlugins(workDir));
    if (!(await sandbox.#pinned())) {
      await (await open(sandbox.netns, "a", 0o600)).close();
      await pinNewNetns(sandbox.netns);
      if (!(await sandbox.#pinned())) throw sandboxError(sandbox.netns, "the bind mount did not take");
    }
    return sandbox;
  }

  /** Unmounts the namespace; the kernel frees it once no plugin holds it. */
  close(): void {
    if (umount2(this.netns, MNT_DETACH) !== 0) {
      const errno = lastErrno();
      // EINVAL: not a mount point (already unmounted).
      if (errno !== constants.errno.EINVAL) throw sandboxError(this.netns, `umount2 failed with ${errnoName(errno)}`);
    }
  }

  /** Whether the file holds a namespace, refusing one that is the agent's own. */
  async #pinned(): Promise<boolean> {
    let type: number;
    try {
      type = (await statfs(this.netns)).type;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw sandboxError(this.netns, (err as Error).message);
    }
    if (type !== NSFS_MAGIC) return false;
    const [pinned, own] = await Promise.all([stat(this.netns), stat("/proc/self/ns/net")]);
    if (pinned.ino === own.ino && pinned.dev === own.dev) {
      throw sandboxError(this.netns, "it holds the agent's own network namespace, where IPAM plugins must never run; unmount it");
    }
    return true;
  }
}

function pinNewNetns(target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_URL, { workerData: target });
    let reply: NetnsWorkerReply | undefined;
    worker.on("message", (message: NetnsWorkerReply) => {
      reply = message;
    });
    onWorkerStop(worker, (why) => {
      if (reply?.ok === true) resolve();
      else if (reply === undefined) reject(sandboxError(target, `its thread stopped without an answer: ${why}`));
      else reject(sandboxError(target, `${reply.call} failed with ${errnoName(reply.errno)} (the agent needs CAP_SYS_ADMIN)`));
    });
  });
}

function sandboxError(path: string, why: string): CniError {
  return new CniError("CNI_SANDBOX", "", `Cannot set up netclaim's network namespace for IPAM plugins at ${path}: ${why}`);
}

function errnoName(errno: number): string {
  return Object.entries(constants.errno).find(([, value]) => value === errno)?.[0] ?? `errno ${errno}`;
}
