/**
 * Devices netclaim never offers, whatever the policy says: loopback, the
 * default-route uplinks, and everything stacked under or enslaved to an
 * uplink (bond and bridge members, a VLAN's parent, the PF of an uplink VF's
 * bond). Moving any of them into a pod would take the node off the network.
 */
import type { NetDevice } from "./device.ts";

export interface Ineligible {
  readonly reason: string;
}

export function ineligibleDevices(devices: readonly NetDevice[], uplinks: ReadonlySet<string>): Map<string, Ineligible> {
  const byName = new Map(devices.map((d) => [d.ifName, d]));
  const out = new Map<string, Ineligible>();
  for (const device of devices) {
    if (device.linkType === "loopback") out.set(device.ifName, { reason: "loopback" });
  }
  // Walk down from each uplink: its lower devices, and anything whose master is in the set.
  const pending = [...uplinks].filter((name) => byName.has(name));
  for (const name of pending) out.set(name, { reason: "carries a default route (node uplink)" });
  while (pending.length > 0) {
    const name = pending.pop();
    if (name === undefined) break;
    const upper = byName.get(name);
    const members = devices.filter((d) => d.master === name).map((d) => d.ifName);
    for (const member of [...members, ...(upper?.lowers ?? [])]) {
      if (out.has(member)) continue;
      out.set(member, { reason: `part of node uplink ${name}` });
      pending.push(member);
    }
  }
  return out;
}
