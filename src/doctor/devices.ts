/**
 * The devices the agent's policy would publish on this node and why the
 * others are left out: the scan `netclaim devices` prints, summed up.
 */
import type { InventorySnapshot } from "../inventory/index.ts";
import { pass, warn, type Check, type CheckResult } from "./check.ts";

export const DEVICES_CHECK = "devices";

export function deviceChecks(scan: () => Promise<InventorySnapshot>, configHint: string): Check[] {
  return [{ name: DEVICES_CHECK, run: async () => checkDevices(await scan(), configHint) }];
}

/** `configHint`: the flags that point `netclaim devices` at the same configuration. */
export function checkDevices(snapshot: InventorySnapshot, configHint: string): CheckResult {
  const published = snapshot.reports.filter((r) => r.publish).map((r) => r.device.ifName === r.name ? r.name : `${r.name} (${r.device.ifName})`);
  const left = leftOut(snapshot);
  if (published.length === 0) {
    return warn(
      DEVICES_CHECK,
      `the device policy publishes none of the node's ${String(snapshot.reports.length)} network devices${left}`,
      `widen the AgentConfig's devices.include (docs/devices.md); netclaim devices${configHint} shows each device's verdict`,
    );
  }
  return pass(DEVICES_CHECK, `publishes ${String(published.length)} of ${String(snapshot.reports.length)}: ${published.join(", ")}${left}`);
}

/** The devices left out, grouped by reason, a few names each: "; left out: lo (never published: loopback); ...". */
function leftOut(snapshot: InventorySnapshot): string {
  const byReason = new Map<string, string[]>();
  for (const report of snapshot.reports) {
    if (report.publish) continue;
    byReason.set(report.reason, [...(byReason.get(report.reason) ?? []), report.device.ifName]);
  }
  if (byReason.size === 0) return "";
  const groups = [...byReason].map(([reason, names]) => {
    const shown = names.slice(0, NAMES_PER_REASON).join(", ");
    const more = names.length > NAMES_PER_REASON ? ` and ${String(names.length - NAMES_PER_REASON)} more` : "";
    return `${shown}${more} (${reason})`;
  });
  return `; left out: ${groups.join("; ")}`;
}

const NAMES_PER_REASON = 3;
