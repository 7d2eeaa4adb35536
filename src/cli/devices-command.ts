import { parseArgs } from "node:util";
import { loadAgentConfig } from "../agent/config.ts";
import { describeDevices, netlinkLinkKinds, scanInventory, SysfsRoot, type DevicePolicy, type InventorySnapshot } from "../inventory/index.ts";
import { NetlinkClient, type BatchRunner } from "../netlink/index.ts";
import { UsageError } from "./usage-error.ts";

export const DEVICES_HELP = `Show this node's network devices and whether netclaim would publish each one.

Reads sysfs (and link kinds over netlink, when the root is /) like the agent
does and applies the same device policy (the AgentConfig "devices" section),
without contacting the API server. Use it to check a policy before rolling it
out, or to see why a device is missing from the ResourceSlices.

Usage:
  netclaim devices [flags]

Flags:
  --config FILE   the AgentConfig whose device policy and driver name to use
  --root DIR      read sysfs/procfs under DIR instead of / (fixtures, chroots);
                  link kinds then come from what sysfs shows, not netlink
  --json          print JSON instead of a table
  --help          show this help`;

export async function runDevicesCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { config: { type: "string" }, root: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    strict: true,
    allowPositionals: true,
  });
  if (values.help === true) {
    process.stdout.write(`${DEVICES_HELP}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`Cannot use argument "${positionals.join(" ")}": netclaim devices takes flags only`);
  const config = await loadAgentConfig({ file: values.config, env: {} });
  const snapshot = await scanNode(values.root ?? config.inventory.root, config.devices);
  process.stdout.write(describeDevices(snapshot, { driverName: config.driverName, json: values.json === true }));
  return 0;
}

/**
 * As the agent scans: netlink knows the kinds of this namespace's links, which /sys shows only at
 * the real root. `netlink` is the caller's client, else one made for the scan.
 */
export async function scanNode(root: string, policy: DevicePolicy, netlink?: BatchRunner): Promise<InventorySnapshot> {
  const sysfs = new SysfsRoot(root);
  if (root !== "/") return scanInventory(sysfs, policy);
  if (netlink !== undefined) return scanInventory(sysfs, policy, { linkKinds: netlinkLinkKinds(netlink) });
  const own = new NetlinkClient();
  try {
    return await scanNode(root, policy, own);
  } finally {
    await own.close();
  }
}
