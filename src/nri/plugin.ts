import { setTimeout as sleep } from "node:timers/promises";
import { errorMessage } from "../common/errors.ts";
import { Backoff } from "./backoff.ts";
import { NriError } from "./errors.ts";
import type { NriHandlers } from "./handlers.ts";
import { subscribedEvents, type RuntimeConfig } from "./plugin-service.ts";
import { NriSession, type ContainerEvictionInit, type ContainerUpdateInit, type SessionLogger } from "./session.ts";
import { connectTransport, transportFromEnv, type NriTransport } from "./transport.ts";

/**
 * - `disconnected`: not registered with the runtime (starting, or
 *   reconnecting after the runtime dropped us); events are not reaching us.
 * - `connected`: registered, configured and synchronized.
 * - `closed`: stopped for good (close(), or a pre-launched plugin whose
 *   socket ended: the runtime does not relaunch it).
 */
export type NriConnectionState = "disconnected" | "connected" | "closed";

export interface NriPluginOptions {
  /** External plugins: the runtime's socket. Default /var/run/nri/nri.sock. */
  readonly socketPath?: string;
  /** Default "netclaim"; a pre-launched plugin takes NRI_PLUGIN_NAME. */
  readonly pluginName?: string;
  /** Two digits, default "10"; a pre-launched plugin takes NRI_PLUGIN_IDX. */
  readonly pluginIndex?: string;
  /** How long RegisterPlugin may take. Default 5000. */
  readonly registrationTimeoutMs?: number;
  /** Reconnect backoff after the runtime drops us. Default 250 ms doubling to 10 s, jittered. */
  readonly reconnect?: { readonly initialMs: number; readonly maxMs: number };
  /** Warn when a handler is still running after this share of the request timeout. Default 0.5. */
  readonly budgetWarnFraction?: number;
  /**
   * Ask the runtime to fail a request this plugin cannot answer (its
   * connection lost, say, because the plugin died while handling it) rather
   * than go on without the plugin. NRI v0.12.5+ (FailurePolicy); earlier
   * runtimes ignore it. Default false, NRI's own default.
   */
  readonly failRequests?: boolean;
  readonly logger?: SessionLogger;
  /** Where NRI_PLUGIN_* come from. Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface NriPlugin {
  readonly state: NriConnectionState;
  readonly transport: NriTransport;
  /** The runtime as the current connection's Configure described it. */
  readonly runtime: RuntimeConfig | undefined;
  /** Calls `listener` on every state change; returns the unsubscribe function. */
  onStateChange(listener: (state: NriConnectionState, cause?: NriError) => void): () => void;
  /** Starts connecting (and reconnecting) in the background. */
  start(): void;
  /** Resolves once connected; rejects if the plugin closes first or `signal` aborts. */
  whenConnected(signal?: AbortSignal): Promise<void>;
  /**
   * Unsolicited container updates and evictions; returns the IDs of containers the
   * runtime failed to update. Safe to call from a handler: it is sent once no
   * handler is running, and must not be awaited inside one.
   */
  updateContainers(update: readonly ContainerUpdateInit[], evict?: readonly ContainerEvictionInit[]): Promise<string[]>;
  /** Disconnects and stops reconnecting. Idempotent. */
  close(): Promise<void>;
}

const silentLogger: SessionLogger = { info() {}, warn() {} };

export function createNriPlugin(handlers: NriHandlers, options: NriPluginOptions = {}): NriPlugin {
  if (subscribedEvents(handlers) === 0) {
    throw new TypeError("Cannot create an NRI plugin without event handlers: implement at least one of runPodSandbox, stopPodSandbox, removePodSandbox, createContainer");
  }
  return new Plugin(handlers, options);
}

class Plugin implements NriPlugin {
  readonly transport: NriTransport;
  readonly #handlers: NriHandlers;
  readonly #logger: SessionLogger;
  readonly #backoff: Backoff;
  readonly #registrationTimeoutMs: number;
  readonly #budgetWarnFraction: number;
  readonly #failRequests: boolean;
  readonly #stop = new AbortController();
  readonly #listeners = new Set<(state: NriConnectionState, cause?: NriError) => void>();
  #state: NriConnectionState = "disconnected";
  #session: NriSession | undefined;
  #loop: Promise<void> | undefined;
  readonly #identity: { pluginName: string; pluginIndex: string };

  constructor(handlers: NriHandlers, options: NriPluginOptions) {
    this.#handlers = handlers;
    this.#logger = options.logger ?? silentLogger;
    this.#backoff = new Backoff(options.reconnect ?? { initialMs: 250, maxMs: 10_000 });
    this.#registrationTimeoutMs = options.registrationTimeoutMs ?? 5000;
    this.#budgetWarnFraction = options.budgetWarnFraction ?? 0.5;
    this.#failRequests = options.failRequests ?? false;
    this.transport = transportFromEnv(options.env ?? process.env, options.socketPath ?? "/var/run/nri/nri.sock");
    const pluginIndex = options.pluginIndex ?? "10";
    const pluginName = options.pluginName ?? "netclaim";
    if (!/^[0-9]{2}$/.test(pluginIndex)) throw new RangeError(`Cannot create NRI plugin: index must be two digits, got ${JSON.stringify(pluginIndex)}`);
    if (!/^[A-Za-z0-9_.+-]+$/.test(pluginName)) throw new RangeError(`Cannot create NRI plugin: name may only use [A-Za-z0-9_.+-], got ${JSON.stringify(pluginName)}`);
    this.#identity = this.transport.kind === "pre-launched" ? { pluginName: this.transport.pluginName, pluginIndex: this.transport.pluginIndex } : { pluginName, pluginIndex };
  }

  get state(): NriConnectionState {
    return this.#state;
  }

  get runtime(): RuntimeConfig | undefined {
    return this.#session?.runtime;
  }

  onStateChange(listener: (state: NriConnectionState, cause?: NriError) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  whenConnected(signal?: AbortSignal): Promise<void> {
    if (this.#state === "connected") return Promise.resolve();
    if (this.#state === "closed") return Promise.reject(new NriError("TTRPC_CLOSED", "NRI plugin is closed"));
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        unsubscribe();
        reject(signal?.reason instanceof Error ? signal.reason : new NriError("TTRPC_CLOSED", "stopped waiting for the NRI connection"));
      };
      const unsubscribe = this.onStateChange((state) => {
        if (state === "disconnected") return;
        unsubscribe();
        signal?.removeEventListener("abort", onAbort);
        if (state === "connected") resolve();
        else reject(new NriError("TTRPC_CLOSED", "NRI plugin closed before it connected"));
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async updateContainers(update: readonly ContainerUpdateInit[], evict: readonly ContainerEvictionInit[] = []): Promise<string[]> {
    const session = this.#session;
    if (session === undefined) throw new NriError("TTRPC_CLOSED", "Cannot update containers: not connected to the NRI runtime");
    return session.updateContainers(update, evict);
  }

  async close(): Promise<void> {
    this.#stop.abort();
    this.#session?.close(new NriError("TTRPC_CLOSED", "NRI plugin closed"));
    await this.#loop;
    this.#setState("closed");
  }

  #setState(state: NriConnectionState, cause?: NriError): void {
    if (this.#state === state || this.#state === "closed") return;
    this.#state = state;
    for (const listener of [...this.#listeners]) {
      try {
        listener(state, cause);
      } catch (err) {
        // A listener's bug must not stop the connection loop.
        this.#logger.warn({ state, error: errorMessage(err) }, "NRI connection state listener failed");
      }
    }
  }

  async #run(): Promise<void> {
    const stopped = this.#stop.signal;
    const isStopped = (): boolean => stopped.aborted;
    while (!isStopped()) {
      let cause: NriError;
      try {
        const socket = await connectTransport(this.transport);
        const session = await NriSession.open(socket, {
          ...this.#identity,
          registrationTimeoutMs: this.#registrationTimeoutMs,
          budgetWarnFraction: this.#budgetWarnFraction,
          failRequests: this.#failRequests,
          handlers: this.#handlers,
          logger: this.#logger,
          signal: stopped,
        });
        if (isStopped()) {
          session.close();
          break;
        }
        this.#session = session;
        this.#backoff.reset();
        this.#setState("connected");
        cause = await session.closed;
        this.#session = undefined;
      } catch (err) {
        cause = err instanceof NriError ? err : new NriError("TTRPC_CLOSED", errorMessage(err), { cause: err });
      }
      if (isStopped()) break;
      this.#logger.warn({ error: cause.message, code: cause.code }, "NRI connection to the runtime is down");
      if (this.transport.kind === "pre-launched") {
        // The runtime will not hand us a new socket; the process should exit.
        this.#setState("closed", cause);
        return;
      }
      this.#setState("disconnected", cause);
      try {
        await sleep(this.#backoff.next(), undefined, { signal: stopped });
      } catch {
        break; // close() during the backoff
      }
    }
  }
}
