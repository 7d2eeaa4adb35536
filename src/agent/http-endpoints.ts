/**
 * The agent's HTTP endpoints: /readyz and /livez for the kubelet's probes,
 * /metrics for Prometheus. Plain text, GET (or HEAD) only, no state of
 * their own: each answer is read from the parts at the time of the request.
 *
 * One request handler serves two listeners:
 *  - a TCP port, for Prometheus and people. The agent uses the host's
 *    network, and during a rolling update the new agent starts while the
 *    old one still holds the port: the new one keeps trying until the old
 *    one lets go, rather than fail its start over it.
 *  - a unix socket of this agent's own (probeSocketPath), which its pod's
 *    exec probes ask through `netclaim probe`: the port is the node's, and
 *    while the old agent holds it an httpGet probe of the new pod would be
 *    answered by the old agent. The socket is served even with the port off.
 */
import { lstat, mkdir, rm } from "node:fs/promises";
import http from "node:http";
import { dirname } from "node:path";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { removeAbandonedSockets } from "../common/abandoned-sockets.ts";
import { errorMessage, NetclaimError } from "../common/errors.ts";

export class HttpEndpointsError extends NetclaimError<"HTTP_LISTEN"> {}

export interface HttpEndpointsOptions {
  /** Absent: every address, IPv6 and IPv4. */
  address?: string | undefined;
  /** Absent: no TCP listener. 0 picks a free port (tests). */
  port?: number | undefined;
  /**
   * A unix socket to serve on as well (probeSocketPath): its directory is
   * made, and a socket left there by an earlier start (a container restart
   * in the same pod) is replaced. Removed on close.
   */
  socketPath?: string | undefined;
  /** The readiness conditions that do not hold now; empty when ready. */
  notReady: () => readonly string[];
  /** What did not answer, named; empty when alive. */
  notAlive: () => Promise<readonly string[]>;
  metrics: Registry;
  logger: Logger;
  /** How often to try again for a port another process holds. Default 1000. */
  portRetryMs?: number;
}

const DEFAULT_PORT_RETRY_MS = 1_000;

export class HttpEndpoints {
  readonly #options: HttpEndpointsOptions;
  /** On the TCP port. */
  readonly #server: http.Server;
  /** On the unix socket. */
  readonly #socketServer: http.Server;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Whether the socket file is ours to remove on close. */
  #servingSocket = false;

  private constructor(options: HttpEndpointsOptions) {
    this.#options = options;
    const handle = (request: http.IncomingMessage, response: http.ServerResponse): void => {
      this.#serve(request, response).catch((err: unknown) => {
        options.logger.error({ err: errorMessage(err), path: request.url }, "cannot answer an HTTP request");
        if (!response.headersSent) reply(response, 500, `cannot answer: ${errorMessage(err)}`);
        else response.destroy();
      });
    };
    this.#server = http.createServer(handle);
    this.#socketServer = http.createServer(handle);
  }

  /**
   * Listens on the socket, then on the port, or keeps trying in the
   * background while another process holds the port; any other failure to
   * listen is thrown.
   */
  static async start(options: HttpEndpointsOptions): Promise<HttpEndpoints> {
    const endpoints = new HttpEndpoints(options);
    try {
      if (options.socketPath !== undefined) await endpoints.#listenOnSocket(options.socketPath);
      if (options.port !== undefined) await endpoints.#listen(options.port);
    } catch (err) {
      await endpoints.close();
      throw err;
    }
    return endpoints;
  }

  /** The port listened on; undefined while waiting for it, or with no port. */
  get port(): number | undefined {
    const address = this.#server.address();
    return address === null || typeof address === "string" ? undefined : address.port;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    await Promise.all([closeServer(this.#server), closeServer(this.#socketServer)]);
    // Closing a unix socket server normally removes its file already.
    if (this.#servingSocket && this.#options.socketPath !== undefined) await rm(this.#options.socketPath, { force: true });
    this.#servingSocket = false;
  }

  async #listenOnSocket(socketPath: string): Promise<void> {
    try {
      await mkdir(dirname(socketPath), { recursive: true });
      await removeStaleSocket(socketPath);
      // Other pods' agents killed before they could remove theirs (a live one's stays).
      await removeAbandonedSockets(dirname(socketPath), (name) => name.endsWith(".sock"), [socketPath]);
      await listen(this.#socketServer, { path: socketPath });
      this.#servingSocket = true;
    } catch (err) {
      throw new HttpEndpointsError("HTTP_LISTEN", `Cannot serve /readyz, /livez and /metrics on ${socketPath}: ${errorMessage(err)}`, { cause: err });
    }
    this.#options.logger.info({ socket: socketPath }, "serving /readyz, /livez and /metrics to this pod's probes");
  }

  async #listen(port: number): Promise<void> {
    const { address, logger } = this.#options;
    const where = `${address ?? "*"}:${port}`;
    try {
      await listen(this.#server, { port, ...(address !== undefined && { host: address }) });
      // A retry that got the port while the agent was stopping.
      if (this.#closed) {
        this.#server.close();
        return;
      }
      logger.info({ address: where, port: this.port }, "serving /readyz, /livez and /metrics");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") {
        throw new HttpEndpointsError("HTTP_LISTEN", `Cannot serve /readyz, /livez and /metrics on ${where}: ${errorMessage(err)}`, { cause: err });
      }
      if (this.#retryTimer === undefined) {
        logger.warn({ address: where }, "another process holds the port of /readyz, /livez and /metrics (the agent this one replaces?); trying again until it lets go");
      }
      if (this.#closed) return;
      this.#retryTimer = setTimeout(() => {
        this.#listen(port).catch((retryErr: unknown) => {
          logger.error({ err: errorMessage(retryErr) }, "gave up serving /readyz, /livez and /metrics");
        });
      }, this.#options.portRetryMs ?? DEFAULT_PORT_RETRY_MS);
      // Waiting for the port must not keep a stopping agent alive.
      this.#retryTimer.unref();
    }
  }

  async #serve(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.setHeader("allow", "GET, HEAD");
      reply(response, 405, "only GET and HEAD");
      return;
    }
    const path = new URL(request.url ?? "/", "http://agent").pathname;
    switch (path) {
      case "/readyz": {
        const missing = this.#options.notReady();
        if (missing.length === 0) reply(response, 200, "ok");
        else reply(response, 503, `not ready: ${missing.join(", ")}`);
        return;
      }
      case "/livez": {
        const problems = await this.#options.notAlive();
        if (problems.length === 0) reply(response, 200, "ok");
        else reply(response, 503, `not alive: ${problems.join("; ")}`);
        return;
      }
      case "/metrics": {
        const { metrics } = this.#options;
        const text = await metrics.metrics();
        response.writeHead(200, { "content-type": metrics.contentType });
        response.end(text);
        return;
      }
      default:
        reply(response, 404, "not found: the agent serves /readyz, /livez and /metrics");
    }
  }
}

function reply(response: http.ServerResponse, status: number, text: string): void {
  response.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
  response.end(`${text}\n`);
}

/** Closes `server` if it listens, dropping kept-alive connections (Prometheus keeps one between scrapes). */
async function closeServer(server: http.Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  server.closeAllConnections();
  await closed;
}

/**
 * Removes the socket an earlier agent of the same name left behind (a
 * container restart in the same pod reuses the pod's UID); anything else
 * there is not ours to remove, and listening fails on it.
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  try {
    if ((await lstat(socketPath)).isSocket()) await rm(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

function listen(server: http.Server, where: { port: number; host?: string } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off("listening", onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(where);
  });
}
