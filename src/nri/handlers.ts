import type { ContainerAdjustmentSpec, ContainerInfo, PodSandboxInfo } from "./model.ts";

export interface HandlerContext {
  /** Aborted at the runtime's deadline for this request, or when the connection ends. */
  readonly signal: AbortSignal;
}

export interface SynchronizedState {
  readonly pods: readonly PodSandboxInfo[];
  readonly containers: readonly ContainerInfo[];
}

type Result<T> = T | Promise<T>;

/**
 * What the rest of the agent implements. Every method is optional: the event
 * subscription is derived from the ones present. A handler that throws fails
 * the event (the runtime returns the error to its CRI caller); throw an
 * NriHandlerError to choose the status.
 *
 * Handlers run within the runtime's request timeout (2 s by default); past
 * it the runtime drops the plugin. Never call `updateContainers` and await it
 * from inside a handler: the runtime holds its lock until the handler returns.
 */
export interface NriHandlers {
  /** The runtime's pods and containers as of (re)connection, all chunks assembled. */
  synchronize?(state: SynchronizedState, ctx: HandlerContext): Result<void>;
  /** The sandbox exists and its network namespace has been set up by CNI. */
  runPodSandbox?(pod: PodSandboxInfo, ctx: HandlerContext): Result<void>;
  stopPodSandbox?(pod: PodSandboxInfo, ctx: HandlerContext): Result<void>;
  removePodSandbox?(pod: PodSandboxInfo, ctx: HandlerContext): Result<void>;
  createContainer?(pod: PodSandboxInfo, container: ContainerInfo, ctx: HandlerContext): Result<ContainerAdjustmentSpec | undefined>;
}
