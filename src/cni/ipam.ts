/**
 * IP addresses for a native-mode device from an existing
 * NetworkAttachmentDefinition's `ipam` section: we run that IPAM plugin
 * (host-local, whereabouts, ...) exactly as the NAD's main plugin would
 * delegate to it, so Multus-era network definitions keep their address pools.
 *
 * The lease records the exact configuration we ran, so the release (CNI DEL)
 * uses the same one even if the NAD is edited or deleted in between.
 */
import { z } from "zod";
import { CniError } from "./errors.ts";
import { execCniPlugin } from "./exec.ts";
import { parseCniResult, type CniResult } from "./result.ts";

export interface IpamLease {
  /** The IPAM plugin type, e.g. host-local. */
  plugin: string;
  /** Exactly what was written to the plugin's stdin. */
  config: Record<string, unknown>;
  containerId: string;
  ifName: string;
  result: CniResult;
}

export interface IpamOptions {
  pluginDirs: readonly string[];
  signal?: AbortSignal;
  /**
   * CNI_NETNS. Addresses are allocated at prepare time, before the pod's
   * namespace exists, and the CNI skeleton requires the variable for ADD; pool
   * allocators (host-local, whereabouts) never enter it, so the default is the
   * agent's own namespace.
   */
  netns?: string;
}

const OWN_NETNS = "/proc/self/ns/net";

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

/**
 * The stdin configuration an IPAM plugin gets from a NAD's `spec.config`
 * (a single plugin config or a conflist).
 */
export function ipamConfigFromNad(nadConfig: string, nadRef: string): { plugin: string; config: Record<string, unknown> } {
  let json: unknown;
  try {
    json = JSON.parse(nadConfig);
  } catch (err) {
    throw new CniError("CNI_CONFIG", "", `Cannot use NetworkAttachmentDefinition ${nadRef}: spec.config is not JSON (${(err as Error).message})`);
  }
  const parsed = netConf.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CniError(
      "CNI_CONFIG",
      "",
      `Cannot use NetworkAttachmentDefinition ${nadRef}: spec.config.${issue?.path.join(".") ?? ""} ${issue?.message ?? "is invalid"}`,
    );
  }
  const conf = parsed.data;
  const candidates = conf.plugins ?? [conf];
  const withIpam = candidates.find((p) => p.ipam !== undefined);
  if (withIpam?.ipam === undefined) {
    throw new CniError("CNI_CONFIG", "", `Cannot use NetworkAttachmentDefinition ${nadRef} for IPAM: its config has no plugin with an "ipam" section`);
  }
  // What the NAD's main plugin would hand its IPAM delegate: its own config
  // with the network's name and version (a conflist's plugins list is not part of it).
  const top = Object.fromEntries(Object.entries(conf).filter(([key]) => key !== "plugins"));
  return {
    plugin: withIpam.ipam.type,
    config: { ...top, ...withIpam, cniVersion: conf.cniVersion, name: conf.name },
  };
}

export async function allocateIpam(
  request: { nadConfig: string; nadRef: string; containerId: string; ifName: string },
  options: IpamOptions,
): Promise<IpamLease> {
  const { plugin, config } = ipamConfigFromNad(request.nadConfig, request.nadRef);
  const output = await execCniPlugin({
    type: plugin,
    command: "ADD",
    containerId: request.containerId,
    netns: options.netns ?? OWN_NETNS,
    ifName: request.ifName,
    config,
    pluginDirs: options.pluginDirs,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const parsed = parseCniResult(output);
  if (!parsed.ok) {
    // Do not keep a lease we cannot use; give it back before reporting.
    await releaseIpam({ plugin, config, containerId: request.containerId, ifName: request.ifName }, options).catch(() => undefined);
    throw new CniError("CNI_RESULT", plugin, `IPAM plugin ${plugin} for ${request.nadRef} returned an invalid result: ${parsed.message}`);
  }
  if (parsed.result.ips.length === 0) {
    await releaseIpam({ plugin, config, containerId: request.containerId, ifName: request.ifName }, options).catch(() => undefined);
    throw new CniError("CNI_RESULT", plugin, `IPAM plugin ${plugin} for ${request.nadRef} returned no addresses`);
  }
  return { plugin, config, containerId: request.containerId, ifName: request.ifName, result: parsed.result };
}

/** CNI DEL; releasing an already released lease succeeds (the spec requires DEL to be idempotent). */
export async function releaseIpam(lease: Omit<IpamLease, "result">, options: IpamOptions): Promise<void> {
  await execCniPlugin({
    type: lease.plugin,
    command: "DEL",
    containerId: lease.containerId,
    netns: options.netns ?? OWN_NETNS,
    ifName: lease.ifName,
    config: lease.config,
    pluginDirs: options.pluginDirs,
    ...(options.signal ? { signal: options.signal } : {}),
  });
}
