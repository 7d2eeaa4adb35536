/** A netclaim NRI plugin for the conformance tests that records what reaches its handlers. */
import { createNriPlugin, type ContainerAdjustmentSpec, type NriConnectionState, type NriHandlers, type NriPlugin, type NriPluginOptions, type PodSandboxInfo, type SynchronizedState } from "../../src/nri/index.ts";

export interface LogEntry {
  level: "info" | "warn";
  fields: Record<string, unknown>;
  message: string;
}

export interface Recording {
  readonly syncs: SynchronizedState[];
  readonly events: { method: string; pod: PodSandboxInfo }[];
  readonly states: NriConnectionState[];
  readonly logs: LogEntry[];
}

export interface RecordingOptions {
  /** Extra behaviour per pod event, e.g. a slow handler. */
  onPodEvent?: (method: string, pod: PodSandboxInfo, signal: AbortSignal) => Promise<void> | void;
  adjust?: ContainerAdjustmentSpec;
  plugin?: NriPluginOptions;
}

export function recordingPlugin(socketPath: string, options: RecordingOptions = {}): { plugin: NriPlugin; recording: Recording } {
  const recording: Recording = { syncs: [], events: [], states: [], logs: [] };
  const podEvent = (method: string) => async (pod: PodSandboxInfo, ctx: { signal: AbortSignal }) => {
    recording.events.push({ method, pod });
    await options.onPodEvent?.(method, pod, ctx.signal);
  };
  const handlers: NriHandlers = {
    synchronize(state) {
      recording.syncs.push(state);
    },
    runPodSandbox: podEvent("runPodSandbox"),
    stopPodSandbox: podEvent("stopPodSandbox"),
    removePodSandbox: podEvent("removePodSandbox"),
    createContainer: () => options.adjust,
  };
  const plugin = createNriPlugin(handlers, {
    socketPath,
    reconnect: { initialMs: 50, maxMs: 200 },
    logger: {
      info: (fields, message) => recording.logs.push({ level: "info", fields, message }),
      warn: (fields, message) => recording.logs.push({ level: "warn", fields, message }),
    },
    ...options.plugin,
  });
  plugin.onStateChange((state) => recording.states.push(state));
  return { plugin, recording };
}

/** Resolves once the plugin has gone through `disconnected` and is `connected` again. */
export function reconnected(plugin: NriPlugin): Promise<void> {
  return new Promise((resolve) => {
    let dropped = false;
    const unsubscribe = plugin.onStateChange((state) => {
      if (state === "disconnected") dropped = true;
      if (state === "connected" && dropped) {
        unsubscribe();
        resolve();
      }
    });
  });
}
