import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import type { Duplex } from "node:stream";
import {
  ContainerEvictionSchema,
  ContainerUpdateSchema,
  RegisterPluginRequestSchema,
  UpdateContainersRequestSchema,
  UpdateContainersResponseSchema,
} from "../gen/nri/api_pb.js";
import { errorMessage } from "../common/errors.ts";
import { HandlerBudget, type BudgetLogger } from "./budget.ts";
import { NriError } from "./errors.ts";
import { hasDefaultValidator } from "./events.ts";
import type { NriHandlers } from "./handlers.ts";
import { ConnId, TrunkMux } from "./mux.ts";
import { PluginService, type RuntimeConfig } from "./plugin-service.ts";
import { statusName } from "./status.ts";
import { TtrpcClient } from "./ttrpc-client.ts";
import { TtrpcServer } from "./ttrpc-server.ts";

export const RUNTIME_SERVICE = "nri.pkg.api.v1alpha1.Runtime";
/** The upstream NRI API release our proto/nri/api.proto follows; the runtime logs it. */
export const NRI_API_VERSION = "v0.12.5";
/** NRI's default request timeout, used until Configure tells us the runtime's. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 2000;

export type ContainerUpdateInit = MessageInitShape<typeof ContainerUpdateSchema>;
export type ContainerEvictionInit = MessageInitShape<typeof ContainerEvictionSchema>;

export interface SessionLogger extends BudgetLogger {
  info(fields: Record<string, unknown>, message: string): void;
}

export interface SessionOptions {
  readonly pluginName: string;
  readonly pluginIndex: string;
  readonly registrationTimeoutMs: number;
  readonly budgetWarnFraction: number;
  /** See NriPluginOptions.failRequests. */
  readonly failRequests: boolean;
  readonly handlers: NriHandlers;
  readonly logger: SessionLogger;
  /** Abandons registration (the plugin is closing). */
  readonly signal: AbortSignal;
}

/**
 * One connection to the runtime, from registration to loss: serve the
 * Plugin service on connection 1 first (the runtime calls Configure as soon
 * as it has our registration, maybe before we read its reply), register on
 * connection 2, then wait for Configure and the whole Synchronize.
 */
export class NriSession {
  readonly #mux: TrunkMux;
  readonly #client: TtrpcClient;
  readonly #service: PluginService;
  readonly #runtime: RuntimeConfig;

  private constructor(mux: TrunkMux, client: TtrpcClient, service: PluginService, runtime: RuntimeConfig) {
    this.#mux = mux;
    this.#client = client;
    this.#service = service;
    this.#runtime = runtime;
  }

  /** Registers on `socket` and resolves once synchronized; closes the socket and throws NRI_REGISTRATION otherwise. */
  static async open(socket: Duplex, options: SessionOptions): Promise<NriSession> {
    const mux = new TrunkMux(socket);
    const budget = new HandlerBudget(DEFAULT_REQUEST_TIMEOUT_MS, { warnFraction: options.budgetWarnFraction, logger: options.logger });
    let runtime: RuntimeConfig | undefined;
    const { promise: synchronized, resolve: markSynchronized } = Promise.withResolvers<undefined>();
    const service = new PluginService(options.handlers, budget, { failRequests: options.failRequests }, {
      configured(config) {
        runtime = config;
        if (config.requestTimeoutMs > 0) budget.requestTimeoutMs = config.requestTimeoutMs;
        options.logger.info({ runtime: config.runtimeName, runtimeVersion: config.runtimeVersion, nriVersion: config.nriVersion, requestTimeoutMs: config.requestTimeoutMs, events: config.events }, "NRI runtime configured the plugin");
        if (!hasDefaultValidator(config)) {
          options.logger.warn(
            { runtime: config.runtimeName, runtimeVersion: config.runtimeVersion, nriVersion: config.nriVersion },
            "this runtime's NRI has no default validator (NRI v0.10+: containerd 2.2+, CRI-O 1.34+), so it creates containers of pods that require this plugin while the plugin is not registered",
          );
        }
      },
      synchronized() {
        markSynchronized(undefined);
      },
      warn: (fields, message) => {
        options.logger.warn(fields, message);
      },
    });
    new TtrpcServer(mux, ConnId.PLUGIN_SERVICE, service.table(), {
      onCallError: (call, status, message) => {
        options.logger.warn({ method: call.method, streamId: call.streamId, status: statusName(status) }, `NRI request failed: ${message}`);
      },
    });
    const client = new TtrpcClient(mux, ConnId.RUNTIME_SERVICE);
    const deadline = AbortSignal.any([options.signal, AbortSignal.timeout(options.registrationTimeoutMs + DEFAULT_REQUEST_TIMEOUT_MS)]);
    try {
      const request = create(RegisterPluginRequestSchema, { pluginName: options.pluginName, pluginIdx: options.pluginIndex, NRIVersion: NRI_API_VERSION });
      await client.call(RUNTIME_SERVICE, "RegisterPlugin", toBinary(RegisterPluginRequestSchema, request), { timeoutMs: options.registrationTimeoutMs, signal: options.signal });
      const { promise: gaveUp, reject: giveUp } = Promise.withResolvers<never>();
      const onDeadline = (): void => {
        giveUp(options.signal.aborted ? new NriError("TTRPC_CLOSED", "plugin closed while registering") : new NriError("TTRPC_TIMEOUT", "runtime did not configure and synchronize the plugin in time"));
      };
      if (deadline.aborted) onDeadline();
      deadline.addEventListener("abort", onDeadline, { once: true });
      try {
        await Promise.race([synchronized, gaveUp, mux.closed.then((err) => Promise.reject(err))]);
      } finally {
        deadline.removeEventListener("abort", onDeadline);
      }
    } catch (err) {
      const failure = new NriError("NRI_REGISTRATION", `Cannot register NRI plugin ${options.pluginIndex}-${options.pluginName}: ${errorMessage(err)}`, { cause: err });
      mux.close(failure);
      throw failure;
    }
    if (runtime === undefined) throw new NriError("NRI_REGISTRATION", "runtime synchronized the plugin without configuring it");
    return new NriSession(mux, client, service, runtime);
  }

  get runtime(): RuntimeConfig {
    return this.#runtime;
  }

  /** Resolves with the error that ended the connection. */
  get closed(): Promise<NriError> {
    return this.#mux.closed;
  }

  /**
   * Sends unsolicited updates once no handler is running: runtimes up to NRI
   * v0.12.0 take their lock inside UpdateContainers, and they hold it while
   * they wait for our handler, so calling from a handler deadlocks.
   */
  async updateContainers(update: readonly ContainerUpdateInit[], evict: readonly ContainerEvictionInit[]): Promise<string[]> {
    await this.#service.idle();
    // Let the reply of the handler that asked for this go out first.
    await new Promise((resolve) => setImmediate(resolve));
    const request = create(UpdateContainersRequestSchema, { update: [...update], evict: [...evict] });
    const reply = await this.#client.call(RUNTIME_SERVICE, "UpdateContainers", toBinary(UpdateContainersRequestSchema, request), {
      timeoutMs: this.#runtime.requestTimeoutMs || DEFAULT_REQUEST_TIMEOUT_MS,
    });
    return fromBinary(UpdateContainersResponseSchema, reply).failed.map((u) => u.containerId);
  }

  close(err?: NriError): void {
    this.#mux.close(err);
  }
}
