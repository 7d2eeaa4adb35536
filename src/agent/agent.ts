/**
 * The composition root: starts the agent's parts in order and stops them in
 * reverse when the signal fires.
 */
import { once } from "node:events";
import type { Logger } from "pino";
import type { AgentConfig } from "./config.ts";

export interface AgentRuntime {
  logger: Logger;
  signal: AbortSignal;
}

export async function runAgent(config: AgentConfig, runtime: AgentRuntime): Promise<void> {
  const { logger, signal } = runtime;
  logger.info(
    { driverName: config.driverName, nodeName: config.nodeName, stateDir: config.stateDir },
    "netclaim agent started",
  );
  if (!signal.aborted) await once(signal, "abort");
  logger.info("netclaim agent stopped");
}
