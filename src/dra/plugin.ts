/**
 * The DRA kubelet plugin: a gRPC server on the DRA socket (DRAPlugin in each
 * configured version, plus DRAResourceHealth when a health source is given)
 * and one on the registration socket.
 *
 * Start order: the DRA socket first, so the kubelet can call it the moment
 * it sees the registration socket. Stop order: the registration socket goes
 * first (the kubelet deregisters this instance and, during a rolling update,
 * turns to the other one), then calls in flight finish, then the DRA socket
 * goes.
 */
import * as grpc from "@grpc/grpc-js";
import { join } from "node:path";
import type { Logger } from "pino";
import * as draV1 from "../gen/kubelet/dra/v1/dra_pb.js";
import * as draV1beta1 from "../gen/kubelet/dra/v1beta1/dra_pb.js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as healthV1 from "../gen/kubelet/drahealth/v1/health_pb.js";
import * as healthV1alpha1 from "../gen/kubelet/drahealth/v1alpha1/health_pb.js";
import { Registration } from "../gen/kubelet/pluginregistration/registration_pb.js";
import type { StateStore } from "../store/index.ts";
import type { ClaimPreparer, ClaimSource } from "./claim.ts";
import { ClaimLocks } from "./claim-locks.ts";
import { ClaimService } from "./claim-service.ts";
import { CLAIM_LOCKS_DIR, ClaimState } from "./claim-state.ts";
import { DEFAULT_CALL_BUDGET_MS, draPluginService } from "./dra-service.ts";
import { addService } from "./grpc-service.ts";
import { DEFAULT_HEALTH_RESEND_MS, KUBELET_HEALTH_TIMEOUT_MS, serveHealthStream, type DeviceHealthSource } from "./health.ts";
import type { DraMetrics } from "./metrics.ts";
import { DRA_VERSIONS, registrationService, supportedVersions, type DraVersion, type RegistrationStatus } from "./registration.ts";
import { bindUnixSocket, removeAbandonedDriverSockets, removeSocket, socketPaths, type SocketPaths } from "./sockets.ts";

export interface DraPluginOptions {
  driver: string;
  /** The kubelet root (`/var/lib/kubelet`); sockets live under it. */
  kubeletRootDir: string;
  /** The agent pod's UID: per-instance socket names for rolling updates. */
  podUID?: string | undefined;
  /** DRAPlugin versions to serve and advertise, most preferred first. */
  versions?: readonly DraVersion[] | undefined;
  /** The state shared by every agent instance on the node. */
  store: StateStore;
  claimSource: ClaimSource;
  preparer: ClaimPreparer;
  /** Serve and advertise the health stream from this source. */
  health?: DeviceHealthSource | undefined;
  healthResendMs?: number | undefined;
  callBudgetMs?: number | undefined;
  /** How long stop waits for calls in flight before cutting them off. */
  stopGraceMs?: number | undefined;
  logger: Logger;
  metrics?: DraMetrics | undefined;
}

const DEFAULT_STOP_GRACE_MS = 5_000;

export class DraPlugin implements AsyncDisposable {
  readonly paths: SocketPaths;
  readonly #log: Logger;
  readonly #claims: ClaimService;
  readonly #dra: grpc.Server;
  readonly #registration: grpc.Server;
  readonly #closing = new AbortController();
  readonly #stopGraceMs: number;
  /** Sockets this instance bound, the only ones it may remove. */
  readonly #bound = new Set<string>();
  #registrationStatus: RegistrationStatus | undefined;
  #closed: Promise<void> | undefined;

  private constructor(options: DraPluginOptions, paths: SocketPaths) {
    const versions = options.versions ?? DRA_VERSIONS;
    if (versions.length === 0) throw new RangeError(`Cannot start the DRA plugin for ${options.driver}: no DRAPlugin version to serve`);
    const resendMs = options.healthResendMs ?? DEFAULT_HEALTH_RESEND_MS;
    if (resendMs <= 0 || resendMs >= KUBELET_HEALTH_TIMEOUT_MS) {
      throw new RangeError(`Cannot re-send health every ${resendMs} ms: it must be between 0 and the kubelet's ${KUBELET_HEALTH_TIMEOUT_MS} ms timeout`);
    }
    this.paths = paths;
    this.#stopGraceMs = options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    this.#log = options.logger.child({ layer: "dra", driver: options.driver, endpoint: paths.dra });
    this.#claims = new ClaimService({
      driver: options.driver,
      source: options.claimSource,
      preparer: options.preparer,
      state: new ClaimState(options.store, options.driver),
      locks: new ClaimLocks(join(options.store.dir, CLAIM_LOCKS_DIR)),
      logger: this.#log,
      metrics: options.metrics,
    });

    this.#dra = new grpc.Server();
    const callBudgetMs = options.callBudgetMs ?? DEFAULT_CALL_BUDGET_MS;
    for (const version of versions) {
      const impl = draPluginService({ claims: this.#claims, callBudgetMs, withShareID: version === "v1" });
      switch (version) {
        case "v1":
          addService(this.#dra, draV1.DRAPlugin, impl);
          break;
        case "v1beta1":
          addService(this.#dra, draV1beta1.DRAPlugin, impl);
          break;
      }
    }
    const health = options.health;
    if (health !== undefined) {
      const serve = (version: string, stream: Parameters<typeof serveHealthStream>[1], context: { signal: AbortSignal }): Promise<void> => {
        this.#log.info({ version }, "the kubelet opened the health stream");
        return serveHealthStream(health, stream, { signal: AbortSignal.any([context.signal, this.#closing.signal]), resendMs });
      };
      addService(this.#dra, healthV1.DRAResourceHealth, {
        nodeWatchResources: (_request, stream, context) => serve("v1", stream, context),
      });
      // Kubelets 1.34 to 1.36 know only v1alpha1 (1.37 to 1.39 both): the same messages on the
      // wire under another package, so each v1 message is re-read as its v1alpha1 twin.
      addService(this.#dra, healthV1alpha1.DRAResourceHealth, {
        nodeWatchResources: (_request, stream, context) =>
          serve("v1alpha1", {
            send: (message) => stream.send(fromBinary(healthV1alpha1.NodeWatchResourcesResponseSchema, toBinary(healthV1.NodeWatchResourcesResponseSchema, create(healthV1.NodeWatchResourcesResponseSchema, message)))),
          }, context),
      });
    }

    this.#registration = new grpc.Server();
    const info = { driver: options.driver, endpoint: paths.dra, versions, health: health !== undefined };
    addService(
      this.#registration,
      Registration,
      registrationService(info, (status) => {
        this.#registrationStatus = status;
        if (status.registered) this.#log.info({ versions: supportedVersions(info) }, "registered with the kubelet");
        else this.#log.error({ error: status.error }, "the kubelet refused the registration");
      }),
    );
  }

  /** Serves the DRA socket, then the registration socket. */
  static async start(options: DraPluginOptions): Promise<DraPlugin> {
    const plugin = new DraPlugin(options, socketPaths({ kubeletRootDir: options.kubeletRootDir, driver: options.driver, podUID: options.podUID }));
    await using stack = new AsyncDisposableStack();
    stack.defer(() => plugin.close());
    const abandoned = await removeAbandonedDriverSockets(plugin.paths, options.driver);
    if (abandoned.length > 0) plugin.#log.warn({ sockets: abandoned }, "removed sockets of agents that were killed before they could remove them");
    await plugin.#bind(plugin.#dra, plugin.paths.dra);
    await plugin.#bind(plugin.#registration, plugin.paths.registration);
    plugin.#log.info({ registration: plugin.paths.registration }, "DRA plugin serving");
    stack.move();
    return plugin;
  }

  /** The kubelet's last word on our registration; undefined until it spoke. */
  get registrationStatus(): RegistrationStatus | undefined {
    return this.#registrationStatus;
  }

  /** Deregisters, lets calls in flight finish (up to the grace period), and removes both sockets. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #bind(server: grpc.Server, path: string): Promise<void> {
    await bindUnixSocket(server, path);
    this.#bound.add(path);
  }

  async #unbind(path: string): Promise<void> {
    if (this.#bound.delete(path)) await removeSocket(path);
  }

  async #close(): Promise<void> {
    await shutdown(this.#registration, 0);
    await this.#unbind(this.paths.registration);
    this.#closing.abort(new Error("the DRA plugin is stopping"));
    await shutdown(this.#dra, this.#stopGraceMs);
    await this.#claims.close(this.#stopGraceMs);
    await this.#unbind(this.paths.dra);
    this.#log.info("DRA plugin stopped");
  }
}

/** Graceful shutdown that cuts remaining calls off after `graceMs`. */
async function shutdown(server: grpc.Server, graceMs: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
