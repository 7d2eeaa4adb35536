/**
 * What `netclaim devices` prints: every netdev, whether it would be
 * published, under which DRA name, and why. The JSON form carries the full
 * attributes for scripts.
 */
import { STANDARD_DOMAIN } from "./attributes.ts";
import type { InventorySnapshot } from "./scan.ts";

export interface DescribeOptions {
  driverName: string;
  json?: boolean;
}

export function describeDevices(snapshot: InventorySnapshot, options: DescribeOptions): string {
  if (options.json === true) {
    return `${JSON.stringify(
      snapshot.reports.map((r) => ({
        device: r.name,
        ifName: r.device.ifName,
        kind: r.device.kind,
        publish: r.publish,
        reason: r.reason,
        ...(r.share !== undefined && { share: r.share }),
        attributes: Object.fromEntries([
          ...Object.entries(r.attributes.local).map(([k, v]) => [`${options.driverName}/${k}`, v] as const),
          ...Object.entries(r.attributes.standard).map(([k, v]) => [`${STANDARD_DOMAIN}/${k}`, v] as const),
        ]),
      })),
      null,
      2,
    )}\n`;
  }
  const rows = snapshot.reports.map((r) => [
    r.publish ? "yes" : "no",
    r.name,
    r.device.ifName,
    r.device.pci?.address ?? "-",
    r.attributes.local.driver?.toString() ?? "-",
    r.reason,
  ]);
  const header = ["PUBLISH", "DEVICE", "IFNAME", "PCI", "DRIVER", "WHY"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ");
  const published = rows.filter((r) => r[0] === "yes").length;
  return `${[line(header), ...rows.map(line)].join("\n")}\n${published} of ${rows.length} devices would be published by driver ${options.driverName}\n`;
}
