/**
 * IP addresses for a native-mode device from an existing
 * NetworkAttachmentDefinition's `ipam` section: we run that IPAM plugin
 * (host-local, whereabouts, static) as the NAD's main plugin would delegate
 * to it, so Multus-era network definitions keep their address pools.
 *
 * Every run is checked against the node's IPAM policy first
 * (ipam-policy.ts) and runs in netclaim's own sandbox (ipam-sandbox.ts),
 * with a time limit.
 *
 * The lease records the exact configuration we ran, so the release (CNI DEL)
 * uses the same one even if the NAD is edited or deleted in between.
 */
import { z } from "zod";
import { CniError } from "./errors.ts";
import { execCniPlugin, type CniCommand } from "./exec.ts";
import { checkHostPaths, checkIpamType, type IpamPolicy } from "./ipam-policy.ts";
import { parseCniResult, type CniResult } from "./result.ts";

/** What an IPAM plugin runs with: its type and exactly what is written to its stdin. */
export interface IpamConfig {
  /** The IPAM plugin type, e.g. host-local. */
  plugin: string;
  config: Record<string, unknown>;
}

export interface IpamLease extends IpamConfig {
  containerId: string;
  ifName: string;
  result: CniResult;
}

export interface IpamRunnerOptions {
  pluginDirs: readonly string[];
  /** CNI_NETNS and the working directory of every plugin: an IpamSandbox, never the host's namespace. */
  sandbox: { readonly netns: string; readonly workDir: string };
  policy: IpamPolicy;
  /** Each plugin run is killed after this long. */
  timeoutMs: number;
}

const pluginConf = z.looseObject({
  type: z.string().optional(),
  ipam: z.looseObject({ type: z.string().min(1) }).optional(),
});

const netConf = z.looseObject({
  cniVersion: z.string().min(1),
  name: z.string().min(1),
  type: z.string().optional(),
  ipam: z.looseObject({ type: z.string().min(1) }).optional(),
  plugins: z.array(pluginConf).optional(),
});

export class IpamRunner {
  readonly #options: IpamRunnerOptions;

  constructor(options: IpamRunnerOptions) {
    this.#options = options;
  }

  get policy(): IpamPolicy {
    return this.#options.policy;
  }

  /**
   * The configuration a NAD's `spec.config` (a single plugin config or a
   * conflist) gives its IPAM plugin, checked against the policy with every
   * error naming the NAD and the field. Throws CniError; runs nothing.
   */
  fromNad(nadConfig: string, nadRef: string): IpamConfig {
    const subject = `NetworkAttachmentDefinition ${nadRef}`;
    let json: unknown;
    try {
      json = JSON.parse(nadConfig);
    } catch (err) {
      throw new CniError("CNI_CONFIG", "", `Cannot use ${subject}: spec.config is not JSON (${(err as Error).message})`);
    }
    const parsed = netConf.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const at = ["spec.config", ...(issue?.path ?? []).map(String)].join(".");
      throw new CniError("CNI_CONFIG", "", `Cannot use ${subject}: ${at}: ${issue?.message ?? "is invalid"}`);
    }
    const conf = parsed.data;
    const index = conf.plugins?.findIndex((p) => p.ipam !== undefined);
    const withIpam = index === undefined ? conf : conf.plugins?.[index];
    if (withIpam?.ipam === undefined) {
      throw new CniError("CNI_CONFIG", "", `Cannot use ${subject} for IPAM: its config has no plugin with an "ipam" section`);
    }
    const plugin = withIpam.ipam.type;
    const pluginField = index === undefined ? "spec.config" : `spec.config.plugins[${index}]`;
    // What the NAD's main plugin would hand its IPAM delegate: its own config
    // with the network's name and version (a conflist's plugins list is not part of it).
    const top = Object.fromEntries(Object.entries(conf).filter(([key]) => key !== "plugins"));
    checkIpamType(plugin, this.policy, subject, `${pluginField}.ipam.type`);
    checkHostPaths(top, this.policy, subject, "spec.config", plugin);
    if (withIpam !== conf) checkHostPaths(withIpam, this.policy, subject, pluginField, plugin);
    return { plugin, config: { ...top, ...withIpam, cniVersion: conf.cniVersion, name: conf.name } };
  }

  async allocate(ipam: IpamConfig, request: { nadRef: string; containerId: string; ifName: string }, signal: AbortSignal): Promise<IpamLease> {
    const lease = { ...ipam, containerId: request.containerId, ifName: request.ifName };
    const output = await this.#run("ADD", lease, `NetworkAttachmentDefinition ${request.nadRef}`, signal);
    const parsed = parseCniResult(output);
    if (parsed.ok && parsed.result.ips.length > 0) return { ...lease, result: parsed.result };
    // Do not keep a lease we cannot use; give it back before reporting.
    await this.release(lease, signal).catch(() => undefined);
    const problem = parsed.ok ? "returned no addresses" : `returned an invalid result: ${parsed.message}`;
    throw new CniError("CNI_RESULT", ipam.plugin, `IPAM plugin ${ipam.plugin} for ${request.nadRef} ${problem}`);
  }

  /**
   * CNI DEL; releasing an already released lease succeeds (the spec requires
   * DEL to be idempotent). A lease the policy no longer allows (journaled by
   * an agent with a wider policy) is refused with CNI_NOT_ALLOWED, and nothing runs.
   */
  async release(lease: Omit<IpamLease, "result">, signal: AbortSignal): Promise<void> {
    await this.#run("DEL", lease, `the journaled configuration of IPAM lease ${lease.containerId}`, signal);
  }

  /** The one place a plugin runs: the policy is checked here whatever the caller checked before. */
  #run(command: CniCommand, lease: Omit<IpamLease, "result">, subject: string, signal: AbortSignal): Promise<unknown> {
    const { pluginDirs, sandbox, policy, timeoutMs } = this.#options;
    checkIpamType(lease.plugin, policy, subject, "ipam.type");
    checkHostPaths(lease.config, policy, subject, "", lease.plugin);
    return execCniPlugin({
      type: lease.plugin,
      command,
      containerId: lease.containerId,
      netns: sandbox.netns,
      workDir: sandbox.workDir,
      ifName: lease.ifName,
      config: lease.config,
      pluginDirs,
      timeoutMs,
      signal,
    });
  }
}
