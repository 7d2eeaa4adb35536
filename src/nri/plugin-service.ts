import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  ConfigureRequestSchema,
  ConfigureResponseSchema,
  CreateContainerRequestSchema,
  CreateContainerResponseSchema,
  EmptySchema,
  RunPodSandboxRequestSchema,
  StateChangeEventSchema,
  SynchronizeRequestSchema,
  SynchronizeResponseSchema,
  type Container,
  type PodSandbox,
} from "../gen/nri/api_pb.js";
import { errorMessage } from "../common/errors.ts";
import type { HandlerBudget } from "./budget.ts";
import { NriHandlerError } from "./errors.ts";
import { eventBit, NriEvent, validEventsFor, type RuntimeIdentity } from "./events.ts";
import type { HandlerContext, NriHandlers } from "./handlers.ts";
import { containerAdjustment, containerInfo, podSandboxInfo } from "./model.ts";
import { StatusCode } from "./status.ts";
import type { CallContext, ServiceTable, UnaryHandler } from "./ttrpc-server.ts";

export const PLUGIN_SERVICE = "nri.pkg.api.v1alpha1.Plugin";

export interface RuntimeConfig extends RuntimeIdentity {
  readonly config: string;
  /** 0 when the runtime predates NRI v0.7 and did not say. */
  readonly registrationTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** The subscription we answered with. */
  readonly events: number;
}

export interface PluginServiceHooks {
  configured(config: RuntimeConfig): void;
  synchronized(): void;
  /** Events the runtime offered outside our subscription, and dropped mask bits. */
  warn(fields: Record<string, unknown>, message: string): void;
}

/** The events a handler set subscribes to. Pod events come by StateChange or by dedicated method. */
export function subscribedEvents(handlers: NriHandlers): number {
  let mask = 0;
  if (handlers.runPodSandbox) mask |= eventBit(NriEvent.RUN_POD_SANDBOX);
  if (handlers.stopPodSandbox) mask |= eventBit(NriEvent.STOP_POD_SANDBOX);
  if (handlers.removePodSandbox) mask |= eventBit(NriEvent.REMOVE_POD_SANDBOX);
  if (handlers.createContainer) mask |= eventBit(NriEvent.CREATE_CONTAINER);
  return mask;
}

type PodHandler = "runPodSandbox" | "stopPodSandbox" | "removePodSandbox";
const podEvents = new Map<number, PodHandler>([
  [NriEvent.RUN_POD_SANDBOX, "runPodSandbox"],
  [NriEvent.STOP_POD_SANDBOX, "stopPodSandbox"],
  [NriEvent.REMOVE_POD_SANDBOX, "removePodSandbox"],
]);

/**
 * The Plugin service for one connection: decodes each request at the
 * boundary, runs the matching handler inside the time budget, and encodes
 * the answer. Methods without a handler are left out of the table, so the
 * server answers them UNIMPLEMENTED. Also counts handlers in flight, so
 * UpdateContainers can wait until none is (the runtime holds its lock while
 * it waits for us).
 */
export class PluginService {
  readonly #handlers: NriHandlers;
  readonly #budget: HandlerBudget;
  readonly #hooks: PluginServiceHooks;
  /** Sent with Configure; unset is NRI's default (the request goes on without us). */
  readonly #failurePolicy: { failurePolicy?: { failRequest: boolean } };
  /** Synchronize chunks received so far (`more = true`). */
  #syncPods: PodSandbox[] = [];
  #syncContainers: Container[] = [];
  #inFlight = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(handlers: NriHandlers, budget: HandlerBudget, policy: { failRequests: boolean }, hooks: PluginServiceHooks) {
    this.#handlers = handlers;
    this.#budget = budget;
    this.#hooks = hooks;
    this.#failurePolicy = policy.failRequests ? { failurePolicy: { failRequest: true } } : {};
  }

  table(): ServiceTable {
    const methods = new Map<string, UnaryHandler>([
      ["Configure", this.#unary(ConfigureRequestSchema, (req) => toBinary(ConfigureResponseSchema, create(ConfigureResponseSchema, { events: this.#configure(req), ...this.#failurePolicy })))],
      ["Synchronize", this.#unary(SynchronizeRequestSchema, (req, ctx) => this.#synchronize(req, ctx))],
      ["Shutdown", this.#unary(EmptySchema, () => new Uint8Array())],
      ["StateChange", this.#unary(StateChangeEventSchema, (req, ctx) => this.#podEvent(podEvents.get(req.event), req.pod, ctx))],
    ]);
    for (const [method, handler] of [
      ["RunPodSandbox", "runPodSandbox"],
      ["StopPodSandbox", "stopPodSandbox"],
      ["RemovePodSandbox", "removePodSandbox"],
    ] as const) {
      // The three v0.12 pod requests are all {pod = 1}.
      if (this.#handlers[handler]) methods.set(method, this.#unary(RunPodSandboxRequestSchema, (req, ctx) => this.#podEvent(handler, req.pod, ctx)));
    }
    if (this.#handlers.createContainer) methods.set("CreateContainer", this.#unary(CreateContainerRequestSchema, (req, ctx) => this.#createContainer(req.pod, req.container, ctx)));
    return new Map([[PLUGIN_SERVICE, methods]]);
  }

  /** Resolves once no handler is running. */
  idle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #unary<D extends DescMessage>(schema: D, serve: (req: MessageShape<D>, ctx: CallContext) => Uint8Array | Promise<Uint8Array>): UnaryHandler {
    return async (payload, ctx) => {
      let request: MessageShape<D>;
      try {
        request = fromBinary(schema, payload);
      } catch (err) {
        throw new NriHandlerError(StatusCode.INVALID_ARGUMENT, `${ctx.method}: cannot decode ${schema.typeName}: ${errorMessage(err)}`);
      }
      return serve(request, ctx);
    };
  }

  #configure(req: MessageShape<typeof ConfigureRequestSchema>): number {
    const runtime = { runtimeName: req.runtimeName, runtimeVersion: req.runtimeVersion, nriVersion: req.NRIVersion };
    const wanted = subscribedEvents(this.#handlers);
    const valid = validEventsFor(runtime);
    const events = wanted & valid;
    if (events !== wanted) {
      this.#hooks.warn({ ...runtime, dropped: `0x${(wanted & ~valid).toString(16)}` }, "NRI runtime does not know some events we handle; not subscribing to them");
    }
    this.#syncPods = [];
    this.#syncContainers = [];
    this.#hooks.configured({
      ...runtime,
      config: req.config,
      registrationTimeoutMs: Number(req.registrationTimeout),
      requestTimeoutMs: Number(req.requestTimeout),
      events,
    });
    return events;
  }

  async #synchronize(req: MessageShape<typeof SynchronizeRequestSchema>, ctx: CallContext): Promise<Uint8Array> {
    this.#syncPods.push(...req.pods);
    this.#syncContainers.push(...req.containers);
    if (req.more) return toBinary(SynchronizeResponseSchema, create(SynchronizeResponseSchema, { more: true }));
    const pods = this.#syncPods.map(podSandboxInfo);
    const containers = this.#syncContainers.map(containerInfo);
    this.#syncPods = [];
    this.#syncContainers = [];
    if (this.#handlers.synchronize) {
      await this.#run("Synchronize", `${pods.length} pods, ${containers.length} containers`, ctx, (hctx) => this.#handlers.synchronize?.({ pods, containers }, hctx));
    }
    this.#hooks.synchronized();
    return new Uint8Array();
  }

  async #podEvent(handler: PodHandler | undefined, pod: PodSandbox | undefined, ctx: CallContext): Promise<Uint8Array> {
    // Not ours (a container StateChange we did not subscribe to, or no handler): acknowledge and ignore.
    if (handler === undefined || this.#handlers[handler] === undefined) return new Uint8Array();
    const info = podSandboxInfo(pod);
    const method = ctx.method === "StateChange" ? `StateChange/${handler}` : ctx.method;
    await this.#run(method, `pod ${info.namespace}/${info.name} (${info.uid})`, ctx, (hctx) => this.#handlers[handler]?.(info, hctx));
    return new Uint8Array();
  }

  async #createContainer(pod: PodSandbox | undefined, container: Container | undefined, ctx: CallContext): Promise<Uint8Array> {
    const podInfo = podSandboxInfo(pod);
    const ctr = containerInfo(container);
    const spec = await this.#run("CreateContainer", `container ${ctr.name} (${ctr.id}) of pod ${podInfo.namespace}/${podInfo.name}`, ctx, (hctx) =>
      this.#handlers.createContainer?.(podInfo, ctr, hctx),
    );
    const response = create(CreateContainerResponseSchema, spec === undefined ? {} : { adjust: containerAdjustment(spec) });
    return toBinary(CreateContainerResponseSchema, response);
  }

  async #run<T>(method: string, subject: string, ctx: CallContext, work: (hctx: HandlerContext) => T | Promise<T>): Promise<T> {
    this.#inFlight++;
    try {
      return await this.#budget.track(method, subject, async () => work({ signal: ctx.signal }));
    } finally {
      if (--this.#inFlight === 0) {
        const waiters = this.#idleWaiters;
        this.#idleWaiters = [];
        for (const resolve of waiters) resolve();
      }
    }
  }
}
