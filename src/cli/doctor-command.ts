/**
 * `netclaim doctor`: whether this node can run netclaim, checked from where
 * the agent runs (its pod) with the agent's own configuration and
 * credentials. The checks live in doctor/; this wires in the real
 * dependencies and prints the report.
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadAgentConfig } from "../agent/config.ts";
import { doctorChecks, exitCode, formatJson, formatText, runChecks, type DoctorApi } from "../doctor/index.ts";
import { agentCredentials, KubeClient } from "../kube/index.ts";
import { NetlinkClient } from "../netlink/index.ts";
import { scanNode } from "./devices-command.ts";
import { AGENT_FLAGS, flagsToConfigLayer, flagsToParseArgsOptions, formatColumns, formatFlags, type FlagSpec } from "./flags.ts";
import { UsageError } from "./usage-error.ts";

/** Where the shipped DaemonSet mounts the AgentConfig: read when --config is not given. */
export const DEFAULT_CONFIG_FILE = "/etc/netclaim/agent.yaml";

/** The agent's flags that say where things are, as `netclaim agent` takes them, and --output. */
const DOCTOR_FLAGS: readonly FlagSpec[] = [
  ...AGENT_FLAGS.filter((f) => ["config", "driver-name", "state-dir", "runtime-dir", "kubeconfig", "kubelet-dir", "pod-uid", "nri-socket", "cdi-dir"].includes(f.name)),
  { name: "output", type: "string", value: "FORMAT", help: "text (the default) or json: one document {checks: [{name, status, message, fix}], summary}" },
  { name: "help", type: "boolean", help: "show this help" },
];

export const DOCTOR_HELP = `Check whether this node can run netclaim, and say what to fix.

Run it where the agent runs, so it sees what the agent sees (its mounts,
its service account):
  kubectl exec -n netclaim ds/netclaim-agent -- netclaim doctor
or on the node as root, with --kubeconfig and the paths the agent uses.
It reads the agent's configuration as the agent does: --config (default
${DEFAULT_CONFIG_FILE} when that file exists, where the DaemonSet mounts
it), then the environment (POD_UID, NETCLAIM_*), then these flags.

Each check prints PASS, WARN or FAIL, and for WARN and FAIL what to do:
  NRI socket            the runtime's socket exists, answers, and registers a
                        plugin (doctor registers as "netclaim-doctor" for a
                        moment and says the runtime's name and version)
  NRI validator         whether the runtime's NRI has the default validator
                        that holds pods while the agent is down
  kubelet plugin dirs   plugins_registry/ and plugins/ under kubelet.rootDir
  kubelet registration  the agent's registration and DRA sockets answer
                        (named after POD_UID when it is set)
  CDI spec dir          exists and is writable
  API server            reachable with the agent's credentials
  clock skew            the node's clock against the API server's Date
  resource.k8s.io       the API version the agent uses (v1) is served
  RBAC                  every permission the agent uses, one
                        SelfSubjectAccessReview each; a FAIL names the verb
  network namespaces, macvlan, ipvlan, RDMA netns mode
                        kernel features, asked of the kernel over netlink
  devices               what the device policy publishes and why the other
                        devices are left out (netclaim devices for detail)
  claim state, attachment journal
                        every state record parses; attachments of claims
                        that are not prepared (orphans) are a WARN

Usage:
  netclaim doctor [flags]

Flags:
${formatFlags(DOCTOR_FLAGS)}

Environment variables (as for netclaim agent):
${formatColumns([["POD_UID", "the agent pod's UID: its sockets carry it"], ["KUBECONFIG", "kubeconfig file (default: in-cluster service account)"], ["NETCLAIM_*", "see netclaim agent --help"]])}

Exit status:
  0  no check failed (warnings allowed)
  1  at least one check failed: the node cannot work as it is
  2  the command line or the configuration is wrong

Examples:
  kubectl exec -n netclaim ds/netclaim-agent -- netclaim doctor
  kubectl exec -n netclaim ds/netclaim-agent -- netclaim doctor --output json | jq '.checks[] | select(.status != "PASS")'
  # on the node as root; RBAC is then checked for the kubeconfig's user
  netclaim doctor --config agent.yaml --kubeconfig agent.kubeconfig --kubelet-dir /var/lib/kubelet

Reference: docs/troubleshooting.md`;

export async function runDoctorCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...args], options: flagsToParseArgsOptions(DOCTOR_FLAGS), strict: true, allowPositionals: true });
  if (values["help"] === true) {
    process.stdout.write(`${DOCTOR_HELP}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`Cannot use argument "${positionals.join(" ")}": netclaim doctor takes flags only`);
  const output = values["output"] ?? "text";
  if (output !== "text" && output !== "json") throw new UsageError(`Cannot print --output ${String(output)}: use text or json`);
  const flagConfig = values["config"];
  const file = typeof flagConfig === "string" ? flagConfig : existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined;
  const config = await loadAgentConfig({ file, env: process.env, flags: flagsToConfigLayer(DOCTOR_FLAGS, values) });

  const netlink = new NetlinkClient();
  let client: KubeClient | undefined;
  try {
    const report = await runChecks(
      doctorChecks(config, {
        connectApi: (): Promise<DoctorApi> => {
          client = KubeClient.create(agentCredentials(config.kubeconfig));
          return Promise.resolve(client);
        },
        netlink,
        scanDevices: () => scanNode(config.inventory.root, config.devices, netlink),
        configHint: file === undefined ? "" : ` --config ${file}`,
      }),
    );
    process.stdout.write(output === "json" ? formatJson(report) : formatText(report));
    return exitCode(report);
  } finally {
    client?.close();
    await netlink.close();
  }
}

