/** Runs test/dra/agent-entry.ts as a child process. */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { SocketPaths } from "../../src/dra/index.ts";
import type { EntryConfig } from "./agent-entry.ts";

const entry = fileURLToPath(new URL("agent-entry.ts", import.meta.url));

export class AgentProcess {
  readonly paths: SocketPaths;
  readonly #child: ChildProcess;
  readonly #exited: Promise<unknown>;
  stderr = "";

  private constructor(child: ChildProcess, paths: SocketPaths) {
    this.#child = child;
    this.paths = paths;
    this.#exited = once(child, "exit");
  }

  static async start(config: EntryConfig): Promise<AgentProcess> {
    const child = spawn(process.execPath, [entry, JSON.stringify(config)], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const lines = createInterface({ input: child.stdout });
    const first = await Promise.race([
      once(lines, "line").then(([line]) => line as string),
      once(child, "exit").then(() => {
        throw new Error(`agent exited before it was ready:\n${stderr}`);
      }),
    ]);
    const agent = new AgentProcess(child, (JSON.parse(first) as { paths: SocketPaths }).paths);
    child.stderr.on("data", (chunk: Buffer) => {
      agent.stderr += chunk.toString();
    });
    return agent;
  }

  /** kill -9: no cleanup of sockets, state or locks. */
  async kill(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill("SIGKILL");
    await this.#exited;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill("SIGTERM");
    await this.#exited;
  }
}
