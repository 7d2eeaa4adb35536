/**
 * A small JSON REST client for the Kubernetes API. Credentials come from a
 * kubeconfig file or the pod's service account, its token re-read as it
 * rotates (credentials.ts); requests go over one keep-alive agent so a node
 * agent holds one TLS connection, and every request is counted so the
 * request rate at steady state can be measured; every failed one is handed
 * to onError (metrics).
 *
 * Watches are streamed here too rather than through the client's Watch,
 * which aborts any watch after 30 s without bytes (longer than the API
 * server's bookmark interval would need) and so reconnects a quiet watch
 * 120 times an hour.
 */
import http from "node:http";
import https from "node:https";
import type { ApiCredentials } from "./credentials.ts";
import { KubeApiError } from "./errors.ts";

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Defaults to application/json; patches pass their own. */
  contentType?: string;
  signal?: AbortSignal;
  /** Told the response's headers (`netclaim doctor` reads the server's Date). */
  onHeaders?: (headers: http.IncomingHttpHeaders) => void;
}

/** Counts requests by verb; the slice publisher's steady-state cost is read from it. */
export class RequestCounter {
  readonly #counts = new Map<string, number>();

  record(method: string): void {
    this.#counts.set(method, (this.#counts.get(method) ?? 0) + 1);
  }

  get(method: string): number {
    return this.#counts.get(method) ?? 0;
  }

  total(): number {
    let sum = 0;
    for (const n of this.#counts.values()) sum += n;
    return sum;
  }

  /** Mutating requests (POST, PUT, PATCH, DELETE). */
  writes(): number {
    return this.get("POST") + this.get("PUT") + this.get("PATCH") + this.get("DELETE");
  }
}

export interface KubeClientOptions {
  /** Told of every request that fails, whatever its caller then does about it. */
  onError?: (err: KubeApiError) => void;
}

export interface WatchStream {
  /** Each line of the response, parsed; resolves when the server ends the watch. */
  events(): AsyncIterable<unknown>;
  close(): void;
}

export class KubeClient {
  readonly #credentials: ApiCredentials;
  readonly #agent: http.Agent;
  readonly #onError: ((err: KubeApiError) => void) | undefined;
  readonly counter = new RequestCounter();

  private constructor(credentials: ApiCredentials, agent: http.Agent, options: KubeClientOptions) {
    this.#credentials = credentials;
    this.#agent = agent;
    this.#onError = options.onError;
  }

  static create(credentials: ApiCredentials, options: KubeClientOptions = {}): KubeClient {
    const agent = credentials.server.protocol === "https:" ? new https.Agent({ keepAlive: true, maxSockets: 8, ...credentials.tls }) : new http.Agent({ keepAlive: true });
    return new KubeClient(credentials, agent, options);
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.#agent.destroy();
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.#send(method, path, options);
    options.onHeaders?.(response.headers);
    const text = await readBody(response);
    if ((response.statusCode ?? 0) >= 300) throw this.#failed(apiError(method, path, response.statusCode ?? 0, text));
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw this.#failed(new KubeApiError("KUBE_DECODE", { method, path, status: 0, reason: "", message: "response is not JSON" }, { cause: err }));
    }
  }

  /** Opens a watch; non-2xx answers reject with the API server's Status. */
  async watch(path: string, query: Query, signal?: AbortSignal): Promise<WatchStream> {
    const controller = new AbortController();
    const combined = signal === undefined ? controller.signal : AbortSignal.any([signal, controller.signal]);
    const response = await this.#send("GET", path, { query: { ...query, watch: true }, signal: combined });
    if ((response.statusCode ?? 0) >= 300) throw this.#failed(apiError("GET", path, response.statusCode ?? 0, await readBody(response)));
    return {
      events: () => watchEvents(response),
      close: () => {
        controller.abort();
        response.destroy();
      },
    };
  }

  async #send(method: string, path: string, options: RequestOptions): Promise<http.IncomingMessage> {
    const url = new URL(path, this.#credentials.server);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: http.OutgoingHttpHeaders = { accept: "application/json" };
    // Asked per request: in-cluster tokens rotate on disk.
    const authorization = this.#credentials.authorization();
    if (authorization !== undefined) headers["authorization"] = authorization;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    if (body !== undefined) {
      headers["content-type"] = options.contentType ?? "application/json";
      headers["content-length"] = Buffer.byteLength(body);
    }
    this.counter.record(method);
    const transport = url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const req = transport.request(url, { method, headers, agent: this.#agent, ...(options.signal ? { signal: options.signal } : {}) });
      let answered = false;
      req.on("response", (response) => {
        answered = true;
        resolve(response);
      });
      req.on("error", (err) => {
        // An error after the response (a watch closed) is the stream's to report.
        if (answered) return;
        const failure = new KubeApiError("KUBE_TRANSPORT", { method, path, status: 0, reason: "", message: err.message }, { cause: err });
        // An abort the caller asked for is no failure.
        reject(options.signal?.aborted === true ? failure : this.#failed(failure));
      });
      req.end(body);
    });
  }

  #failed(err: KubeApiError): KubeApiError {
    this.#onError?.(err);
    return err;
  }
}

/**
 * The watch's newline-delimited JSON events. A stream destroyed by close()
 * (or by the peer) simply ends the iteration; the caller decides whether
 * that was expected.
 */
async function* watchEvents(response: http.IncomingMessage): AsyncGenerator {
  let pending = "";
  try {
    for await (const chunk of response) {
      pending += (chunk as Buffer).toString("utf8");
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line !== "") yield JSON.parse(line) as unknown;
        newline = pending.indexOf("\n");
      }
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE" || (err as Error).name === "AbortError") return;
    throw err;
  }
}

async function readBody(response: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function apiError(method: string, path: string, status: number, text: string): KubeApiError {
  let reason = http.STATUS_CODES[status] ?? "Error";
  let message = text.slice(0, 500);
  try {
    const parsed = JSON.parse(text) as { reason?: unknown; message?: unknown };
    if (typeof parsed.reason === "string") reason = parsed.reason;
    if (typeof parsed.message === "string") message = parsed.message;
  } catch {
    // Not a Status object (a proxy's HTML page): keep the raw text.
  }
  return new KubeApiError("KUBE_API", { method, path, status, reason, message });
}
