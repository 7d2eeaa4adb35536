/**
 * IP address text <-> bytes for netlink attributes. Formatting goes through
 * the WHATWG URL parser, which canonicalises IPv6 per RFC 5952, so dumps
 * compare equal to what users and `ip` write.
 */
import { isIPv4, isIPv6 } from "node:net";

export type Family = 4 | 6;
export const AF_INET = 2;
export const AF_INET6 = 10;

export function familyOf(text: string): Family {
  if (isIPv4(text)) return 4;
  if (isIPv6(text)) return 6;
  throw new RangeError(`"${text}" is not an IPv4 or IPv6 address`);
}

export function afOf(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

export function ipToBytes(text: string): Uint8Array {
  if (isIPv4(text)) return Uint8Array.from(text.split(".").map(Number));
  if (!isIPv6(text)) throw new RangeError(`"${text}" is not an IPv4 or IPv6 address`);
  let groups: number[];
  let tail = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  const v4Groups: number[] = [];
  if (v4?.[1] !== undefined) {
    const b = ipToBytes(v4[1]);
    v4Groups.push(((b[0] ?? 0) << 8) | (b[1] ?? 0), ((b[2] ?? 0) << 8) | (b[3] ?? 0));
    tail = text.slice(0, -v4[1].length) + "0:0";
  }
  const [head = "", rest] = tail.split("::");
  const parse = (s: string): number[] => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  if (rest === undefined) {
    groups = parse(head);
  } else {
    const h = parse(head);
    const t = parse(rest);
    groups = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  }
  if (v4Groups.length === 2) groups.splice(6, 2, ...v4Groups);
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  if (bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

/** Canonical text of an address ("fd00:0::1" -> "fd00::1"). */
export function canonicalIp(text: string): string {
  return bytesToIp(ipToBytes(text));
}

/** Parses "198.51.100.2/24" into its parts; throws naming the text when invalid. */
export function parseCidr(text: string): { address: string; prefixLength: number; family: Family } {
  const slash = text.indexOf("/");
  const address = slash === -1 ? text : text.slice(0, slash);
  const family = familyOf(address);
  const max = family === 4 ? 32 : 128;
  const prefixLength = slash === -1 ? max : Number(text.slice(slash + 1));
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > max) {
    throw new RangeError(`"${text}" has an invalid prefix length (0 to ${max})`);
  }
  return { address: canonicalIp(address), prefixLength, family };
}

export function macToBytes(mac: string): Uint8Array {
  const parts = mac.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new RangeError(`"${mac}" is not a MAC address like 02:00:00:00:00:01`);
  }
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function bytesToMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** The network address of `address/prefixLength` (host bits cleared), as routes need. */
export function networkOf(address: string, prefixLength: number): string {
  const bytes = ipToBytes(address);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefixLength - i * 8));
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return bytesToIp(bytes);
}
