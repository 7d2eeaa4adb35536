#!/usr/bin/env node
/**
 * The `netclaim` command. Each subcommand parses its own flags; errors the
 * user can fix are printed without a stack trace and exit with status 2.
 */
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { UsageError } from "./usage-error.ts";
import { NetclaimError, errorMessage } from "../common/errors.ts";

const MAIN_HELP = `netclaim: a Kubernetes Network Driver. It gives pods secondary network
interfaces requested through Dynamic Resource Allocation (DRA) ResourceClaims,
and attaches them through the container runtime's NRI.

Usage:
  netclaim <command> [flags]

Commands:
  agent     run the node agent (normally as a DaemonSet); see \`netclaim agent --help\`
  devices   show this node's network devices and whether they would be published
  doctor    check whether this node can run netclaim, and say what to fix
  probe     ask this pod's agent whether it is ready or alive (the DaemonSet's probes)
  version   print the netclaim version
  help      show this help

Documentation: docs/ (start with docs/configuration.md)`;

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version?: unknown;
  };
  return typeof pkg.version === "string" ? pkg.version : "unknown";
}

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${MAIN_HELP}\n`);
      return command === undefined ? 2 : 0;
    case "version":
    case "--version": {
      const { values } = parseArgs({ args: rest, options: { json: { type: "boolean" } }, strict: true });
      const version = packageVersion();
      process.stdout.write(
        values.json === true
          ? `${JSON.stringify({ version, node: process.version })}\n`
          : `netclaim ${version} (node ${process.version})\n`,
      );
      return 0;
    }
    // Subcommands load on demand: `version` must not pay for the agent's dependencies.
    case "agent":
      return (await import("./agent-command.ts")).runAgentCommand(rest);
    case "devices":
      return (await import("./devices-command.ts")).runDevicesCommand(rest);
    case "doctor":
      return (await import("./doctor-command.ts")).runDoctorCommand(rest);
    case "probe":
      return (await import("./probe-command.ts")).runProbeCommand(rest);
    default:
      throw new UsageError(`Cannot run unknown command "${command}": see \`netclaim --help\``);
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof UsageError || err instanceof NetclaimError || isParseArgsError(err)) {
        process.stderr.write(`netclaim: ${errorMessage(err)}\n`);
        process.exitCode = 2;
      } else {
        process.stderr.write(`netclaim: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exitCode = 1;
      }
    },
  );
}

function isParseArgsError(err: unknown): boolean {
  return err instanceof TypeError && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS");
}
