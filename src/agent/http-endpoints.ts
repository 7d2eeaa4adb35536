/**
 * The agent's HTTP endpoints: /readyz and /livez for the kubelet's probes,
 * /metrics for Prometheus. Plain text, GET (or HEAD) only, no state of
 * their own: each answer is read from the parts at the time of the request.
 *
 * The agent uses the host's network, and during a rolling update the new
 * agent starts while the old one still holds the port: the new one keeps
 * trying until the old one lets go, rather than fail its start over it.
 */
import http from "node:http";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { errorMessage, NetclaimError } from "../common/errors.ts";

export class HttpEndpointsError extends NetclaimError<"HTTP_LISTEN"> {}

export interface HttpEndpointsOptions {
  /** Absent: every address, IPv6 and IPv4. */
  address?: string | undefined;
  /** 0 picks a free port (tests). */
  port: number;
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
  readonly #server: http.Server;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(options: HttpEndpointsOptions) {
    this.#options = options;
    this.#server = http.createServer((request, response) => {
      this.#serve(request, response).catch((err: unknown) => {
        options.logger.error({ err: errorMessage(err), path: request.url }, "cannot answer an HTTP request");
        if (!response.headersSent) reply(response, 500, `cannot answer: ${errorMessage(err)}`);
        else response.destroy();
      });
    });
  }

  /**
   * Listens, or keeps trying in the background while another process holds
   * the port; any other failure to listen is thrown.
   */
  static async start(options: HttpEndpointsOptions): Promise<HttpEndpoints> {
    const endpoints = new HttpEndpoints(options);
    await endpoints.#listen();
    return endpoints;
  }

  /** The port listened on; undefined while waiting for it. */
  get port(): number | undefined {
    const address = this.#server.address();
    return address === null || typeof address === "string" ? undefined : address.port;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    if (!this.#server.listening) return;
    const closed = new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
    // Prometheus keeps its connection open between scrapes.
    this.#server.closeAllConnections();
    await closed;
  }

  async #listen(): Promise<void> {
    const { address, port, logger } = this.#options;
    const where = `${address ?? "*"}:${port}`;
    try {
      await listen(this.#server, port, address);
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
        this.#listen().catch((retryErr: unknown) => {
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

function listen(server: http.Server, port: number, host: string | undefined): Promise<void> {
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
    server.listen({ port, ...(host !== undefined && { host }) });
  });
}
