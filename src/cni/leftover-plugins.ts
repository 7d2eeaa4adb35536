/**
 * IPAM plugins that outlived the agent which started them.
 *
 * A plugin runs in a process group of its own (exec.ts), so a kill -9 of the
 * agent leaves it running. A restarted agent must not release a lease while
 * such a leftover ADD is still inside its plugin: the ADD would write its
 * lease after the DEL and nobody would release it again. Every plugin runs
 * in the sandbox's working directory, which only netclaim uses, so before
 * the agent runs any plugin it kills the process group of every process
 * there. The directory is matched by device and inode, not by path: the
 * agent's container, and so its mount namespace, changes with each restart.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { CniError } from "./errors.ts";

export interface LeftoverPlugin {
  pid: number;
  /** Its process group, killed whole. */
  pgid: number;
  /** The command line, for the log. */
  command: string;
}

/** How long killed plugins get to be gone before the agent refuses to start. */
const GONE_WITHIN_MS = 10_000;
const POLL_MS = 20;

/**
 * Kills the process group of every process whose working directory is
 * `workDir`, waits until they are gone, and returns them. Throws when one is
 * still there after GONE_WITHIN_MS (a process stuck in the kernel): running
 * DELs beside it could leak its lease.
 */
export async function killLeftoverPlugins(workDir: string, proc = "/proc"): Promise<LeftoverPlugin[]> {
  const dir = await stat(workDir);
  const leftovers: LeftoverPlugin[] = [];
  for (const pid of (await readdir(proc)).filter((entry) => /^\d+$/.test(entry)).map(Number)) {
    if (pid === process.pid) continue;
    // A process that exited meanwhile, or one of another user we cannot look into, is not ours.
    const cwd = await stat(`${proc}/${pid}/cwd`).catch(() => undefined);
    if (cwd?.dev !== dir.dev || cwd.ino !== dir.ino) continue;
    const status = await processStat(proc, pid);
    if (status === undefined || !isRunning(status)) continue;
    const command = (await readFile(`${proc}/${pid}/cmdline`, "utf8").catch(() => "")).replaceAll("\0", " ").trim();
    leftovers.push({ pid, pgid: status.pgid, command });
  }
  for (const pgid of new Set(leftovers.map((l) => l.pgid))) {
    // Never our own group: a plugin always has one of its own, so this only guards a mistake.
    if (pgid === process.pid || pgid <= 1) continue;
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // ESRCH: gone already.
    }
  }
  const deadline = Date.now() + GONE_WITHIN_MS;
  for (;;) {
    const alive: LeftoverPlugin[] = [];
    for (const leftover of leftovers) if (await running(proc, leftover.pid)) alive.push(leftover);
    if (alive.length === 0) return leftovers;
    if (Date.now() > deadline) {
      const which = alive.map((l) => `${l.pid} (${l.command})`).join(", ");
      throw new CniError(
        "CNI_SANDBOX",
        "",
        `IPAM plugins a previous agent started in ${workDir} are still running ${GONE_WITHIN_MS / 1000} s after SIGKILL: ${which}; ` +
          "releasing leases beside them could leak one, so the agent does not start until they are gone",
      );
    }
    await sleep(POLL_MS);
  }
}

/** A zombie has finished: only its parent's reaping is left. */
function isRunning(status: { state: string }): boolean {
  return status.state !== "Z" && status.state !== "X";
}

async function running(proc: string, pid: number): Promise<boolean> {
  const status = await processStat(proc, pid);
  return status !== undefined && isRunning(status);
}

/** State and process group from /proc/<pid>/stat; undefined once the process is gone. */
async function processStat(proc: string, pid: number): Promise<{ state: string; pgid: number } | undefined> {
  const text = await readFile(`${proc}/${pid}/stat`, "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so read after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0] ?? "", pgid: Number(fields[2]) };
}
