/**
 * Where the kubelet looks for us, and how a socket is served there: stale
 * sockets from a crashed run are removed before listening, sockets are
 * owner-only (0600) from the moment they appear at their path, and they are
 * removed on stop (removing the registration socket is what tells the kubelet
 * to deregister the plugin).
 *
 * With a pod UID (rolling updates) every agent instance gets its own pair of
 * sockets, so an old and a new agent can be registered at the same time:
 *   <root>/plugins_registry/<driver>-<podUID>-reg.sock
 *   <root>/plugins/<driver>/dra-<podUID>.sock
 * A killed instance's pair is never reused by name: removeAbandonedDriverSockets
 * sweeps them at the next start.
 */
import type * as grpc from "@grpc/grpc-js";
import { ServerCredentials } from "@grpc/grpc-js";
import { chmod, lstat, mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { removeAbandonedSockets } from "../common/abandoned-sockets.ts";
import { errorMessage } from "../common/errors.ts";
import { DraSocketError } from "./errors.ts";

/** sockaddr_un.sun_path is 108 bytes, one of them the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/**
 * A socket is bound as `<dir>/.bind-XXXXXX/s` first (see bindUnixSocket). The
 * leading dot matters: the kubelet's plugin watcher ignores entries whose name
 * starts with one, so it never sees the socket before it is in place.
 */
const STAGING_DIR_PREFIX = ".bind-";
const STAGED_NAME = "s";
/** "/.bind-XXXXXX/s" */
const STAGING_OVERHEAD = 1 + STAGING_DIR_PREFIX.length + 6 + 1 + STAGED_NAME.length;

export interface SocketPaths {
  readonly registration: string;
  readonly dra: string;
}

export function socketPaths(options: { kubeletRootDir: string; driver: string; podUID?: string | undefined }): SocketPaths {
  const { kubeletRootDir, driver, podUID } = options;
  const paths = {
    registration: join(kubeletRootDir, "plugins_registry", podUID === undefined ? `${driver}-reg.sock` : `${driver}-${podUID}-reg.sock`),
    dra: join(kubeletRootDir, "plugins", driver, podUID === undefined ? "dra.sock" : `dra-${podUID}.sock`),
  };
  for (const path of Object.values(paths)) {
    const longest = Math.max(Buffer.byteLength(path), Buffer.byteLength(dirname(path)) + STAGING_OVERHEAD);
    if (longest > MAX_SOCKET_PATH) {
      throw new DraSocketError(path, `the path (or its staging path) is ${longest} bytes, more than the ${MAX_SOCKET_PATH} a unix socket allows`);
    }
  }
  return paths;
}

/**
 * Removes this driver's sockets that no agent listens on any more (instances
 * killed before they could remove their own), keeping `own`; returns them.
 */
export async function removeAbandonedDriverSockets(own: SocketPaths, driver: string): Promise<string[]> {
  const registrations = await removeAbandonedSockets(
    dirname(own.registration),
    (name) => name.startsWith(`${driver}-`) && name.endsWith("-reg.sock"),
    [own.registration],
  );
  const dra = await removeAbandonedSockets(dirname(own.dra), (name) => /^dra(-.+)?\.sock$/.test(name), [own.dra]);
  return [...registrations, ...dra];
}

/**
 * Binds `server` to a fresh unix socket at `path`, readable by its owner only.
 *
 * A socket gets its mode from the umask at bind(2), so binding at `path` and
 * restricting it afterwards leaves a window in which any local user could
 * connect and prepare claims. Instead the socket is bound inside a fresh 0700
 * directory next to `path`, restricted there, and renamed into place: it
 * appears at `path` already owner-only. (The umask itself is process-wide and
 * would also mask files other parts of the agent create meanwhile.)
 */
export async function bindUnixSocket(server: grpc.Server, path: string): Promise<void> {
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true, mode: 0o750 });
  } catch (err) {
    throw new DraSocketError(path, `cannot create its directory: ${errorMessage(err)}`, { cause: err });
  }
  await removeStaleSocket(path);
  let staging: string;
  try {
    staging = await mkdtemp(join(dir, STAGING_DIR_PREFIX));
  } catch (err) {
    throw new DraSocketError(path, `cannot create a private directory to bind in: ${errorMessage(err)}`, { cause: err });
  }
  const staged = join(staging, STAGED_NAME);
  try {
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix://${staged}`, ServerCredentials.createInsecure(), (err) => {
        if (err) reject(new DraSocketError(path, `cannot listen: ${err.message}`, { cause: err }));
        else resolve();
      });
    });
    try {
      await chmod(staged, 0o600);
      await rename(staged, path);
    } catch (err) {
      throw new DraSocketError(path, `cannot put the owner-only socket in place: ${errorMessage(err)}`, { cause: err });
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Removes a socket a crashed run left; refuses to remove anything that is not a socket. */
async function removeStaleSocket(path: string): Promise<void> {
  let stat;
  try {
    stat = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new DraSocketError(path, `cannot inspect it: ${errorMessage(err)}`, { cause: err });
  }
  if (!stat.isSocket()) throw new DraSocketError(path, "a file that is not a socket is in the way");
  await removeSocket(path);
}

export async function removeSocket(path: string): Promise<void> {
  try {
    await rm(path, { force: true });
  } catch (err) {
    throw new DraSocketError(path, `cannot remove it: ${errorMessage(err)}`, { cause: err });
  }
}
