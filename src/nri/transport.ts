import { createConnection, Socket } from "node:net";
import { NriError } from "./errors.ts";

/** How the plugin reaches the runtime. */
export type NriTransport =
  | { readonly kind: "external"; readonly socketPath: string }
  /** Launched by the runtime from its plugin directory, with the socket already open as an fd. */
  | { readonly kind: "pre-launched"; readonly fd: number; readonly pluginName: string; readonly pluginIndex: string };

/**
 * The runtime launches pre-installed plugins with exactly NRI_PLUGIN_NAME,
 * NRI_PLUGIN_IDX and NRI_PLUGIN_SOCKET (an fd number, not a path) set; an
 * external plugin connects to the runtime's socket.
 */
export function transportFromEnv(env: NodeJS.ProcessEnv, socketPath: string): NriTransport {
  const fdText = env.NRI_PLUGIN_SOCKET;
  if (fdText === undefined || fdText === "") return { kind: "external", socketPath };
  const fd = Number(fdText);
  if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`Cannot use NRI_PLUGIN_SOCKET: not a file descriptor number: ${JSON.stringify(fdText)}`);
  const pluginName = env.NRI_PLUGIN_NAME ?? "";
  const pluginIndex = env.NRI_PLUGIN_IDX ?? "";
  if (pluginName === "" || !/^[0-9]{2}$/.test(pluginIndex)) {
    throw new TypeError(`Cannot start as a pre-launched NRI plugin: NRI_PLUGIN_NAME=${JSON.stringify(pluginName)} NRI_PLUGIN_IDX=${JSON.stringify(pluginIndex)}`);
  }
  return { kind: "pre-launched", fd, pluginName, pluginIndex };
}

export async function connectTransport(transport: NriTransport): Promise<Socket> {
  if (transport.kind === "pre-launched") return new Socket({ fd: transport.fd, readable: true, writable: true });
  const socket = createConnection(transport.socketPath);
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new NriError("TTRPC_CLOSED", `Cannot connect to NRI socket ${transport.socketPath}: ${err.message}`, { cause: err }));
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("error", onError);
      resolve();
    });
  });
  return socket;
}
