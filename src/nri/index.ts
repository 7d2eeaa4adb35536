/**
 * netclaim's NRI plugin: ttrpc over the NRI multiplexer, registration,
 * configuration, synchronization and event delivery to typed handlers, with
 * reconnects. Knows nothing of Kubernetes: handlers get the runtime's pod
 * sandboxes and containers as plain objects.
 *
 *   const plugin = createNriPlugin({ runPodSandbox(pod) { ... } }, { socketPath });
 *   plugin.onStateChange((state) => ...);   // "connected" | "disconnected" | "closed"
 *   plugin.start();
 */
export { createNriPlugin, type NriConnectionState, type NriPlugin, type NriPluginOptions } from "./plugin.ts";
export type { HandlerContext, NriHandlers, SynchronizedState } from "./handlers.ts";
export { ContainerState, type ContainerAdjustmentSpec, type ContainerInfo, type LinuxDeviceSpec, type PodSandboxInfo } from "./model.ts";
export type { RuntimeConfig } from "./plugin-service.ts";
export type { ContainerEvictionInit, ContainerUpdateInit, SessionLogger } from "./session.ts";
export type { NriTransport } from "./transport.ts";
export { NriError, NriHandlerError, TtrpcStatusError, type NriErrorCode } from "./errors.ts";
export { StatusCode } from "./status.ts";
export { hasDefaultValidator, type RuntimeIdentity } from "./events.ts";
export { REQUIRED_PLUGINS_ANNOTATION, requiredPlugins, type RequiredPlugins } from "./required-plugins.ts";
