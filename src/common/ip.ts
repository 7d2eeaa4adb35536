/**
 * IP addresses and prefixes as bytes, parsed strictly (no zone ids, no IPv4
 * octets with leading zeros, no IPv4-mapped tricks in prefixes) and printed
 * canonically (RFC 5952 for IPv6), so a CIDR we report in claim status is the
 * one Kubernetes validation accepts and two spellings of one address compare
 * equal.
 */
import { isIPv6 } from "node:net";

export type IpFamily = 4 | 6;

export interface IpAddress {
  readonly family: IpFamily;
  readonly bytes: Uint8Array;
}

export interface IpPrefix extends IpAddress {
  readonly prefixLength: number;
}

export function parseIp(text: string): IpAddress | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return { family: 4, bytes: v4 };
  if (isIPv6(text) && !text.includes("%")) return { family: 6, bytes: parseIpv6(text) };
  return undefined;
}

const DIGIT_0 = 48;
const DIGIT_9 = 57;
const DOT = 46;

/**
 * Four decimal octets of 0-255 without leading zeros, else undefined. A
 * character loop, not a split and a regular expression per octet: every
 * attach parses a handful of addresses while its code is cold, where the
 * loop costs a fifth as much.
 */
function parseIpv4(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(4);
  let octets = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : DOT;
    if (c >= DIGIT_0 && c <= DIGIT_9) {
      // A leading zero ("07") is refused: some parsers read it as octal.
      if (digits > 0 && value === 0) return undefined;
      value = value * 10 + (c - DIGIT_0);
      digits++;
      if (value > 255) return undefined;
    } else if (c === DOT && digits > 0 && octets < 4) {
      bytes[octets++] = value;
      value = 0;
      digits = 0;
    } else {
      return undefined;
    }
  }
  return octets === 4 ? bytes : undefined;
}

/** "198.51.100.7/24" → address with its prefix length; host bits are kept. */
export function parseCidr(text: string): IpPrefix | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseIp(text.slice(0, slash));
  const lengthText = text.slice(slash + 1);
  if (address === undefined || !/^(0|[1-9][0-9]{0,2})$/.test(lengthText)) return undefined;
  const prefixLength = Number(lengthText);
  if (prefixLength > address.bytes.length * 8) return undefined;
  return { ...address, prefixLength };
}

export function formatIp(address: IpAddress): string {
  if (address.family === 4) {
    const b = address.bytes;
    return `${b[0] ?? 0}.${b[1] ?? 0}.${b[2] ?? 0}.${b[3] ?? 0}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((address.bytes[i] ?? 0) << 8) | (address.bytes[i + 1] ?? 0));
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first if tied.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

export function formatCidr(prefix: IpPrefix): string {
  return `${formatIp(prefix)}/${prefix.prefixLength}`;
}

/** The prefix with its host bits cleared (the network). */
export function networkOf(prefix: IpPrefix): IpPrefix {
  const bytes = Uint8Array.from(prefix.bytes);
  for (let bit = prefix.prefixLength; bit < bytes.length * 8; bit++) {
    const index = bit >> 3;
    bytes[index] = (bytes[index] ?? 0) & ~(0x80 >> (bit & 7));
  }
  return { family: prefix.family, bytes, prefixLength: prefix.prefixLength };
}

export function prefixContains(prefix: IpPrefix, address: IpAddress): boolean {
  if (prefix.family !== address.family) return false;
  const network = networkOf(prefix);
  const candidate = networkOf({ ...address, prefixLength: prefix.prefixLength });
  return ipEquals(network, candidate);
}

export function ipEquals(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.bytes.every((byte, i) => byte === b.bytes[i]);
}

function parseIpv6(text: string): Uint8Array {
  // node:net has validated the syntax: turn a trailing dotted quad into two
  // hex groups, then expand "::" to the missing zero groups.
  let hex = text;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(hex);
  if (quad !== null) {
    const [a = 0, b = 0, c = 0, d = 0] = quad.slice(1).map(Number);
    hex = `${hex.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [left = "", right] = hex.split("::");
  const split = (part: string): string[] => (part === "" ? [] : part.split(":"));
  const groups =
    right === undefined
      ? split(left)
      : [...split(left), ...new Array<string>(8 - split(left).length - split(right).length).fill("0"), ...split(right)];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    const value = parseInt(group, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  });
  return bytes;
}
