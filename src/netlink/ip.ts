/**
 * IP and MAC address text <-> bytes for netlink attributes, on top of the
 * shared strict parser and RFC 5952 formatter in common/ip.ts, so dumps
 * compare equal to what users and `ip` write.
 */
import { formatIp, networkOf as networkOfPrefix, parseCidr, parseIp, type IpAddress, type IpFamily } from "../common/ip.ts";

export type Family = IpFamily;
export const AF_INET = 2;
export const AF_INET6 = 10;

export function familyOf(text: string): Family {
  return parseOrThrow(text).family;
}

export function afOf(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

export function ipToBytes(text: string): Uint8Array {
  return Uint8Array.from(parseOrThrow(text).bytes);
}

export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length !== 4 && bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  return formatIp({ family: bytes.length === 4 ? 4 : 6, bytes });
}

/** Canonical text of an address ("fd00:0::1" -> "fd00::1"). */
export function canonicalIp(text: string): string {
  return formatIp(parseOrThrow(text));
}

/**
 * The parts of "198.51.100.2/24" (a bare address is a host prefix), the
 * address canonical; throws naming the text when invalid.
 */
export function cidrParts(text: string): { address: string; prefixLength: number; family: Family } {
  if (!text.includes("/")) {
    const ip = parseOrThrow(text);
    return { address: formatIp(ip), prefixLength: ip.bytes.length * 8, family: ip.family };
  }
  const prefix = parseCidr(text);
  if (prefix === undefined) throw new RangeError(`"${text}" is not an address with a valid prefix length`);
  return { address: formatIp(prefix), prefixLength: prefix.prefixLength, family: prefix.family };
}

export function macToBytes(mac: string): Uint8Array {
  const parts = mac.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new RangeError(`"${mac}" is not a MAC address like 02:00:00:00:00:01`);
  }
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

const HEX_BYTE = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** "02:00:00:00:00:01" (any length: an IPoIB address has 20 bytes); by table lookup, since each link a dump decodes has two or three. */
export function bytesToMac(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += `${i === 0 ? "" : ":"}${HEX_BYTE[bytes[i] ?? 0] ?? ""}`;
  return text;
}

/** The network address of `address/prefixLength` (host bits cleared), as routes need. */
export function networkOf(address: string, prefixLength: number): string {
  return formatIp(networkOfPrefix({ ...parseOrThrow(address), prefixLength }));
}

function parseOrThrow(text: string): IpAddress {
  const ip = parseIp(text);
  if (ip === undefined) throw new RangeError(`"${text}" is not an IPv4 or IPv6 address`);
  return ip;
}
