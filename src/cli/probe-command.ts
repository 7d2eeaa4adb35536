/**
 * `netclaim probe`: the agent pod's exec probes. The agent uses the node's
 * network, so an httpGet probe of its port may be answered by another agent
 * (the old one of a rolling update, which holds the port until it exits):
 * this command asks the agent of its own pod, on the unix socket named
 * after the pod (probeSocketPath). It runs every 10 s per probe on every
 * node: it loads the configuration and nothing of the agent itself.
 */
import { request } from "node:http";
import { parseArgs } from "node:util";
import { loadAgentConfig } from "../agent/config.ts";
import { probeSocketPath } from "../agent/probes.ts";
import { errorMessage } from "../common/errors.ts";
import { UsageError } from "./usage-error.ts";

export const PROBE_HELP = `Ask this pod's netclaim agent whether it is ready or alive.

The agent's DaemonSet runs it as its readiness and liveness probes (exec).
The agent answers /readyz and /livez on a unix socket of its own,
<runtimeDir>/probes/<pod UID>.sock (agent.sock without a pod UID), so the
probes of a pod reach that pod's agent, never the other agent of a rolling
update, which shares the node's network (and HTTP port) and runtimeDir. The
path comes from the configuration read as the agent reads it: --config, then
the environment (POD_UID, NETCLAIM_RUNTIME_DIR).

Usage:
  netclaim probe ready|live [--config FILE]

Probes:
  ready   GET /readyz: registered with the kubelet, connected to NRI and
          ResourceSlices published; gives up after 3 s
  live    GET /livez: the engine's thread answers (the agent waits up to 5 s
          for it); gives up after 8 s

Flags:
  --config FILE   the agent's AgentConfig, as given to \`netclaim agent --config\`
  --help          show this help

Exit status:
  0  the agent answered 200 (its answer is printed)
  1  the agent answered otherwise, or not at all; its answer, or why there
     was none, is printed
  2  the command line or the configuration is wrong

Example (in the agent's container):
  netclaim probe ready --config /etc/netclaim/agent.yaml

Reference: docs/metrics.md`;

interface Probe {
  path: string;
  timeoutMs: number;
}

const PROBES: Record<string, Probe> = {
  ready: { path: "/readyz", timeoutMs: 3_000 },
  // /livez waits up to 5 s for the engine's thread (DEFAULT_LIVENESS_TIMEOUT_MS).
  live: { path: "/livez", timeoutMs: 8_000 },
};

export interface ProbeCommandOptions {
  /** Where POD_UID and NETCLAIM_* come from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Overrides the probe's time limit (tests). */
  timeoutMs?: number;
}

export async function runProbeCommand(args: readonly string[], options: ProbeCommandOptions = {}): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { config: { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
    allowPositionals: true,
  });
  if (values.help === true) {
    process.stdout.write(`${PROBE_HELP}\n`);
    return 0;
  }
  const [name, ...extra] = positionals;
  const probe = name === undefined || !Object.hasOwn(PROBES, name) ? undefined : PROBES[name];
  if (probe === undefined || extra.length > 0) {
    throw new UsageError(`Cannot probe "${positionals.join(" ")}": netclaim probe takes ready or live; see \`netclaim probe --help\``);
  }
  const config = await loadAgentConfig({ file: values.config, env: options.env ?? process.env });
  const socketPath = probeSocketPath(config);
  const timeoutMs = options.timeoutMs ?? probe.timeoutMs;
  const prefix = `netclaim probe ${name ?? ""}`;
  let answer: Answer;
  try {
    answer = await get(socketPath, probe.path, timeoutMs);
  } catch (err) {
    process.stderr.write(`${prefix}: ${whyNoAnswer(err, socketPath, probe.path, timeoutMs)}\n`);
    return 1;
  }
  const text = answer.body.trim();
  if (answer.status === 200) {
    process.stdout.write(`${text}\n`);
    return 0;
  }
  process.stderr.write(`${prefix}: the agent answered ${answer.status}: ${text}\n`);
  return 1;
}

interface Answer {
  status: number;
  body: string;
}

function get(socketPath: string, path: string, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // agent: false, no keep-alive: the command exits as soon as it has its answer.
    const req = request({ socketPath, path, method: "GET", agent: false, signal: AbortSignal.timeout(timeoutMs) }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        body += chunk;
      });
      response.on("end", () => {
        resolve({ status: response.statusCode ?? 0, body });
      });
      response.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

function whyNoAnswer(err: unknown, socketPath: string, path: string, timeoutMs: number): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ECONNREFUSED") {
    return `the agent is not serving its probe socket at ${socketPath}: not started yet or not running (${code})`;
  }
  if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) {
    return `the agent did not answer GET ${path} on ${socketPath} within ${timeoutMs / 1000} s`;
  }
  return `cannot ask the agent on ${socketPath}: ${errorMessage(err)}`;
}
