/**
 * Where the kubelet looks for us, and how a socket is served there: stale
 * sockets from a crashed run are removed before listening, sockets are
 * owner-only (0600), and they are removed on stop (removing the registration
 * socket is what tells the kubelet to deregister the plugin).
 *
 * With a pod UID (rolling updates) every agent instance gets its own pair of
 * sockets, so an old and a new agent can be registered at the same time:
 *   <root>/plugins_registry/<driver>-<podUID>-reg.sock
 *   <root>/plugins/<driver>/dra-<podUID>.sock
 */
import type * as grpc from "@grpc/grpc-js";
import { ServerCredentials } from "@grpc/grpc-js";
import { chmod, lstat, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { errorMessage } from "../common/errors.ts";
import { DraSocketError } from "./errors.ts";

/** sockaddr_un.sun_path is 108 bytes, one of them the terminating NUL. */
const MAX_SOCKET_PATH = 107;

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
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
      throw new DraSocketError(path, `the path is ${Buffer.byteLength(path)} bytes, more than the ${MAX_SOCKET_PATH} a unix socket allows`);
    }
  }
  return paths;
}

/** Binds `server` to a fresh unix socket at `path`, readable by its owner only. */
export async function bindUnixSocket(server: grpc.Server, path: string): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  } catch (err) {
    throw new DraSocketError(path, `cannot create its directory: ${errorMessage(err)}`, { cause: err });
  }
  await removeStaleSocket(path);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${path}`, ServerCredentials.createInsecure(), (err) => {
      if (err) reject(new DraSocketError(path, `cannot listen: ${err.message}`, { cause: err }));
      else resolve();
    });
  });
  try {
    await chmod(path, 0o600);
  } catch (err) {
    throw new DraSocketError(path, `cannot restrict it to its owner: ${errorMessage(err)}`, { cause: err });
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
