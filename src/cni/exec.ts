/**
 * Runs a CNI plugin binary the way a container runtime does (CNI spec,
 * "Execution protocol"): parameters in CNI_* environment variables, the
 * network configuration on stdin, a result or an error object on stdout.
 */
import { spawn } from "node:child_process";
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { CniError } from "./errors.ts";
import { parseCniError } from "./result.ts";

export type CniCommand = "ADD" | "DEL" | "CHECK" | "VERSION";

export interface CniInvocation {
  /** The plugin's `type`: a bare executable name looked up in pluginDirs. */
  type: string;
  command: CniCommand;
  containerId: string;
  /** Path of the network namespace; may be empty for IPAM plugins that do not enter it. */
  netns: string;
  ifName: string;
  /** The configuration written to the plugin's stdin. */
  config: Record<string, unknown>;
  pluginDirs: readonly string[];
  /** CNI_ARGS, "K=V;K=V". */
  args?: string;
  signal?: AbortSignal;
  /** Kill the plugin after this long (default 30 s). */
  timeoutMs?: number;
}

const PLUGIN_TYPE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Runs the plugin and returns its parsed stdout (`undefined` when it printed nothing, as DEL may). */
export async function execCniPlugin(invocation: CniInvocation): Promise<unknown> {
  const { type, command } = invocation;
  if (!PLUGIN_TYPE.test(type)) {
    throw new CniError("CNI_CONFIG", type, `Cannot run CNI plugin "${type}": a plugin type is a bare file name`);
  }
  const binary = await findPlugin(type, invocation.pluginDirs);
  const env: NodeJS.ProcessEnv = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: invocation.containerId,
    CNI_NETNS: invocation.netns,
    CNI_IFNAME: invocation.ifName,
    CNI_PATH: invocation.pluginDirs.join(":"),
    PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
  };
  if (invocation.args !== undefined) env["CNI_ARGS"] = invocation.args;

  const { code, stdout, stderr } = await run(binary, env, JSON.stringify(invocation.config), {
    timeoutMs: invocation.timeoutMs ?? 30_000,
    ...(invocation.signal ? { signal: invocation.signal } : {}),
  });
  const what = `CNI plugin ${type} ${command} (container ${invocation.containerId}, interface ${invocation.ifName})`;
  let output: unknown;
  if (stdout.trim() !== "") {
    try {
      output = JSON.parse(stdout);
    } catch {
      if (code === 0) throw new CniError("CNI_RESULT", type, `${what} printed something that is not JSON: ${stdout.slice(0, 200)}`);
    }
  }
  if (code !== 0) {
    const reported = parseCniError(output);
    const detail = reported
      ? `${reported.msg}${reported.details ? `: ${reported.details}` : ""} (CNI error ${reported.code})`
      : `exit status ${code}${stderr.trim() ? `: ${stderr.trim().slice(0, 500)}` : ""}`;
    throw new CniError("CNI_PLUGIN_FAILED", type, `${what} failed: ${detail}`, reported ? { cniCode: reported.code } : {});
  }
  return output;
}

async function findPlugin(type: string, dirs: readonly string[]): Promise<string> {
  for (const dir of dirs) {
    const candidate = join(dir, type);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory; try the next, as the runtime does.
    }
  }
  throw new CniError(
    "CNI_PLUGIN_NOT_FOUND",
    type,
    `Cannot find CNI plugin "${type}" in ${dirs.join(", ")}: install it there or set cni.binDirs in the agent configuration`,
  );
}

function run(
  binary: string,
  env: NodeJS.ProcessEnv,
  stdin: string,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [], {
      env,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: options.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (signal !== null) {
        reject(new CniError("CNI_PLUGIN_FAILED", binary, `CNI plugin ${binary} was killed by ${signal} (timeout ${options.timeoutMs} ms or cancelled)`));
        return;
      }
      resolve({ code: code ?? 1, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8") });
    });
    // A plugin that exits without reading stdin makes this write fail with EPIPE; the exit status tells the story.
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin);
  });
}
