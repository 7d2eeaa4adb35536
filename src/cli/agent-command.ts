import { parseArgs } from "node:util";
import { ENVIRONMENT_VARIABLES, loadAgentConfig } from "../agent/config.ts";
import { runAgent } from "../agent/agent.ts";
import { createLogger } from "../agent/logger.ts";
import { AGENT_FLAGS, flagsToConfigLayer, flagsToParseArgsOptions, formatColumns, formatFlags } from "./flags.ts";

export const AGENT_HELP = `Run the netclaim node agent.

The agent advertises this node's network devices as DRA ResourceSlices, serves
the kubelet's DRA plugin API, and attaches allocated devices to pods through
the container runtime's NRI socket. It runs as root on every node (DaemonSet).

Usage:
  netclaim agent [flags]

Flags:
${formatFlags(AGENT_FLAGS)}

Configuration is read from --config, then environment variables, then flags;
later sources win. Environment variables:
${formatColumns(ENVIRONMENT_VARIABLES.map((v) => [v.name, v.help]))}

Example:
  netclaim agent --config /etc/netclaim/agent.yaml --node-name worker-1

Reference: docs/configuration.md`;

export async function runAgentCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: flagsToParseArgsOptions(AGENT_FLAGS),
    strict: true,
    allowPositionals: true,
  });
  if (values["help"] === true) {
    process.stdout.write(`${AGENT_HELP}\n`);
    return 0;
  }
  if (positionals.length > 0) {
    process.stderr.write(`netclaim agent: unexpected argument "${positionals.join(" ")}"; see --help\n`);
    return 2;
  }
  const config = await loadAgentConfig({
    file: typeof values["config"] === "string" ? values["config"] : undefined,
    env: process.env,
    flags: flagsToConfigLayer(AGENT_FLAGS, values),
  });
  if (values["dry-run"] === true) {
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    return 0;
  }
  const logger = createLogger(config.log.level);
  process.on("unhandledRejection", (reason) => {
    // A bug, not a reason to take every pod's networking down with us.
    logger.error({ err: reason }, "unhandled promise rejection");
  });
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, "stopping");
    stop.abort(new Error(`received ${signal}`));
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  await runAgent(config, { logger, signal: stop.signal });
  return 0;
}
