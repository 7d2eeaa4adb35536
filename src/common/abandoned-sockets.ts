/**
 * Unix sockets that an agent killed without its cleanup left behind. With
 * per-pod socket names (rolling updates), a crashed or OOM-killed agent's
 * sockets are never reused by the next one, so each start sweeps them: the
 * kubelet would otherwise keep trying to register a plugin that is gone, and
 * an uninstalled node would keep them for good.
 *
 * A socket is abandoned when nothing accepts a connection on it
 * (ECONNREFUSED). A live agent's socket connects even while that agent is
 * stopped or busy (the kernel queues the connection), so the agent beside
 * this one in a rolling update keeps its sockets.
 */
import { lstat, readdir, rm } from "node:fs/promises";
import { createConnection } from "node:net";
import { join } from "node:path";

/** How long a connect to a local socket may take before the socket counts as alive. */
const CONNECT_TIMEOUT_MS = 2_000;

/** Whether `path` is a unix socket that nothing listens on. */
export async function isAbandonedSocket(path: string): Promise<boolean> {
  try {
    if (!(await lstat(path)).isSocket()) return false;
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    const socket = createConnection({ path });
    const done = (abandoned: boolean): void => {
      socket.destroy();
      resolve(abandoned);
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => {
      done(false);
    });
    socket.once("connect", () => {
      done(false);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      done(err.code === "ECONNREFUSED");
    });
  });
}

/**
 * Removes the abandoned sockets in `dir` whose names `matches` accepts, except
 * `keep`; returns the paths removed. A missing directory has none.
 */
export async function removeAbandonedSockets(dir: string, matches: (name: string) => boolean, keep: readonly string[] = []): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const removed: string[] = [];
  for (const name of names.filter(matches)) {
    const path = join(dir, name);
    if (keep.includes(path) || !(await isAbandonedSocket(path))) continue;
    await rm(path, { force: true });
    removed.push(path);
  }
  return removed;
}
