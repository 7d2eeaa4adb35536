/**
 * Runs a CNI plugin binary the way a container runtime does (CNI spec,
 * "Execution protocol"): parameters in CNI_* environment variables, the
 * network configuration on stdin, a result or an error object on stdout.
 *
 * A plugin is code chosen by whoever wrote the network configuration, so
 * its run is bounded: at most `timeoutMs` of wall time, MAX_STDOUT_BYTES on
 * stdout and MAX_STDERR_BYTES on stderr (fixed: a CNI result is a few KiB).
 * Past a bound the plugin's whole process group gets SIGKILL, so a shell
 * script's children go with it.
 */
import { spawn } from "node:child_process";
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { CniError } from "./errors.ts";
import { parseCniError } from "./result.ts";

export type CniCommand = "ADD" | "DEL" | "CHECK" | "VERSION";

export const MAX_STDOUT_BYTES = 1024 * 1024;
export const MAX_STDERR_BYTES = 64 * 1024;

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
  /**
   * The plugin's working directory. Relative paths in its configuration
   * resolve here, so it must be a directory netclaim owns, never "/".
   */
  workDir: string;
  /** Kill the plugin after this long. */
  timeoutMs: number;
  /** CNI_ARGS, "K=V;K=V". */
  args?: string;
  signal?: AbortSignal;
}

const PLUGIN_TYPE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Whether `type` can name a plugin binary: a bare file name, never a path. */
export function isPluginType(type: string): boolean {
  return PLUGIN_TYPE.test(type);
}

/** Runs the plugin and returns its parsed stdout (`undefined` when it printed nothing, as DEL may). */
export async function execCniPlugin(invocation: CniInvocation): Promise<unknown> {
  const { type, command } = invocation;
  if (!isPluginType(type)) {
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

  const what = `CNI plugin ${type} ${command} (container ${invocation.containerId}, interface ${invocation.ifName})`;
  const { code, stdout, stderr } = await run(binary, env, JSON.stringify(invocation.config), { ...invocation, what });
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

interface RunOptions {
  type: string;
  what: string;
  workDir: string;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

function run(binary: string, env: NodeJS.ProcessEnv, stdin: string, options: RunOptions): Promise<{ code: number; stdout: string; stderr: string }> {
  const { type, what, signal } = options;
  return new Promise((resolve, reject) => {
    // detached: a process group of its own (setsid), so a kill reaches whatever the plugin started.
    const child = spawn(binary, [], { env, cwd: options.workDir, stdio: ["pipe", "pipe", "pipe"], detached: true });
    let stopped: CniError | undefined;
    const stop = (reason: CniError): void => {
      if (stopped !== undefined) return;
      stopped = reason;
      killGroup(child.pid);
    };
    const timer = setTimeout(() => {
      stop(new CniError("CNI_LIMIT", type, `${what} ran longer than ${options.timeoutMs / 1000} s, the limit set by cni.ipam.timeoutSeconds, and was killed`));
    }, options.timeoutMs);
    const onAbort = (): void => {
      stop(new CniError("CNI_CANCELLED", type, `${what} was cancelled and killed: ${String(signal?.reason)}`));
    };
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const overLimit = (stream: string, limit: number) => (): void => {
      stop(new CniError("CNI_LIMIT", type, `${what} printed more than ${limit} bytes on ${stream}, netclaim's fixed limit, and was killed`));
    };
    const stdout = collect(child.stdout, MAX_STDOUT_BYTES, overLimit("stdout", MAX_STDOUT_BYTES));
    const stderr = collect(child.stderr, MAX_STDERR_BYTES, overLimit("stderr", MAX_STDERR_BYTES));
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      return true;
    };
    child.on("error", (err) => {
      if (!settle()) return;
      killGroup(child.pid);
      reject(new CniError("CNI_PLUGIN_FAILED", type, `Cannot run ${what} from ${binary}: ${err.message}`, { cause: err }));
    });
    // "close" comes once the plugin exited and every holder of its pipes (its children) is gone.
    child.on("close", (code, killedBy) => {
      if (!settle()) return;
      if (stopped !== undefined) reject(stopped);
      else if (killedBy !== null) reject(new CniError("CNI_PLUGIN_FAILED", type, `${what} was killed by ${killedBy}`));
      else resolve({ code: code ?? 1, stdout: stdout(), stderr: stderr() });
    });
    // A plugin that exits without reading stdin makes this write fail with EPIPE; the exit status tells the story.
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin);
  });
}

/** Keeps at most `limit` bytes of `stream`; past it calls `overflow` and drains the rest, so the writer never blocks. */
function collect(stream: Readable, limit: number, overflow: () => void): () => string {
  const chunks: Buffer[] = [];
  let size = 0;
  stream.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size > limit) overflow();
    else chunks.push(chunk);
  });
  return () => Buffer.concat(chunks).toString("utf8");
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // ESRCH: the group is already gone.
  }
}
