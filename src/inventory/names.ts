/**
 * Stable DRA device names (DNS-1123 labels). A PCI function is named after
 * its address, which survives renames and moves into pods: pci-0000-3b-00-0
 * (dranet's scheme, so names port across drivers). A function with several
 * netdevs (one per port) adds the port: pci-0000-3b-00-0-p1. A device with no
 * PCI function keeps its interface name when that is a valid label, and
 * otherwise becomes net-<base32 of the name>, which is still stable and
 * unique.
 */
import type { NetDevice } from "./device.ts";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function isDnsLabel(name: string): boolean {
  return DNS_LABEL.test(name);
}

/** Names for every device, unique within the node. */
export function assignDeviceNames(devices: readonly NetDevice[]): Map<NetDevice, string> {
  const perFunction = new Map<string, number>();
  for (const device of devices) {
    if (device.pci !== undefined) perFunction.set(device.pci.address, (perFunction.get(device.pci.address) ?? 0) + 1);
  }
  const names = new Map<NetDevice, string>();
  for (const device of devices) {
    const shared = device.pci !== undefined && (perFunction.get(device.pci.address) ?? 0) > 1;
    names.set(device, deviceName(device, shared));
  }
  return names;
}

export function deviceName(device: NetDevice, sharedFunction = false): string {
  if (device.pci !== undefined) {
    const base = `pci-${device.pci.address.replace(/[:.]/g, "-")}`;
    return sharedFunction ? `${base}-p${device.devPort}` : base;
  }
  if (isDnsLabel(device.ifName)) return device.ifName;
  return `net-${base32(device.ifName)}`;
}

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";

/** RFC 4648 base32, lowercase, no padding: 15 bytes of ifname give at most 24 characters. */
function base32(text: string): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET.charAt((value >>> (bits - 5)) & 31);
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET.charAt((value << (5 - bits)) & 31);
  return out;
}
