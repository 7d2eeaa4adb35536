/**
 * Netlink wire encoding: a Writer that builds messages with nested
 * attributes (fork()/join() reserve a header and patch its length, padding
 * to 4 bytes), and a Reader that walks a received buffer with bounds checks.
 * Both respect the Uint8Array's byteOffset, so pooled Buffers are safe.
 * Netlink is host-endian; this code assumes little-endian hosts (x86-64 and
 * arm64 in practice) and says so where it matters.
 */
import { NetlinkError } from "./errors.ts";

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
/** Set on a nested attribute's type by kernels that mark nesting. */
export const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;
const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();

export function align4(n: number): number {
  return (n + 3) & ~3;
}

export class Writer {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #len = 0;
  readonly #stack: { start: number; kind: "message" | "attribute" }[] = [];

  get length(): number {
    return this.#len;
  }

  #reserve(n: number): number {
    const at = this.#len;
    const need = at + n;
    if (need > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(need, this.#buf.length * 2));
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    this.#len = need;
    return at;
  }

  u8(v: number): this {
    this.#view.setUint8(this.#reserve(1), v);
    return this;
  }

  u16(v: number): this {
    this.#view.setUint16(this.#reserve(2), v, true);
    return this;
  }

  u32(v: number): this {
    this.#view.setUint32(this.#reserve(4), v >>> 0, true);
    return this;
  }

  i32(v: number): this {
    this.#view.setInt32(this.#reserve(4), v, true);
    return this;
  }

  bytes(data: Uint8Array): this {
    this.#buf.set(data, this.#reserve(data.length));
    return this;
  }

  /** Pads with zeros to the next 4-byte boundary. */
  pad(): this {
    const padded = align4(this.#len);
    if (padded > this.#len) this.#reserve(padded - this.#len);
    return this;
  }

  /**
   * Starts a length-prefixed region: a netlink message (16-byte header whose
   * first field is a u32 length) or an attribute (u16 length, u16 type). The
   * caller writes the rest of the header; join() patches the length.
   */
  fork(kind: "message" | "attribute"): this {
    this.#stack.push({ start: this.#len, kind });
    return kind === "message" ? this.u32(0) : this.u16(0);
  }

  /** Ends the innermost fork(): patches its length and pads to 4 bytes. */
  join(): this {
    const open = this.#stack.pop();
    if (open === undefined) throw new RangeError("join() without fork()");
    const len = this.#len - open.start;
    if (open.kind === "message") {
      this.#view.setUint32(open.start, len, true);
    } else {
      if (len > 0xffff) throw new RangeError(`netlink attribute of ${len} bytes exceeds 65535`);
      this.#view.setUint16(open.start, len, true);
    }
    return this.pad();
  }

  /** Starts a netlink message: header with type, flags, seq, port id 0; end it with join(). */
  message(type: number, flags: number, seq: number): this {
    return this.fork("message").u16(type).u16(flags).u32(seq).u32(0);
  }

  /** Starts a nested attribute; end it with join(). */
  nest(type: number): this {
    return this.fork("attribute").u16(type | NLA_F_NESTED);
  }

  attrU8(type: number, v: number): this {
    return this.fork("attribute").u16(type).u8(v).join();
  }

  attrU16(type: number, v: number): this {
    return this.fork("attribute").u16(type).u16(v).join();
  }

  attrU32(type: number, v: number): this {
    return this.fork("attribute").u16(type).u32(v).join();
  }

  attrI32(type: number, v: number): this {
    return this.fork("attribute").u16(type).i32(v).join();
  }

  attrBytes(type: number, v: Uint8Array): this {
    return this.fork("attribute").u16(type).bytes(v).join();
  }

  /** A NUL-terminated string attribute (IFLA_IFNAME and friends). */
  attrString(type: number, v: string): this {
    return this.fork("attribute").u16(type).bytes(utf8Encoder.encode(v)).u8(0).join();
  }

  finish(): Uint8Array {
    if (this.#stack.length > 0) throw new RangeError("finish() with an open fork()");
    return this.#buf.slice(0, this.#len);
  }
}

/** Bounds-checked reads over a region of a received buffer. */
export class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #pos = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.#bytes.length - this.#pos;
  }

  #need(n: number, what: string): number {
    if (this.#pos + n > this.#bytes.length) {
      throw new NetlinkError("NETLINK_MALFORMED", `truncated ${what}: need ${n} bytes at offset ${this.#pos}, have ${this.remaining}`);
    }
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  u8(what = "u8"): number {
    return this.#view.getUint8(this.#need(1, what));
  }

  u16(what = "u16"): number {
    return this.#view.getUint16(this.#need(2, what), true);
  }

  u32(what = "u32"): number {
    return this.#view.getUint32(this.#need(4, what), true);
  }

  i32(what = "i32"): number {
    return this.#view.getInt32(this.#need(4, what), true);
  }

  bytes(n: number, what = "bytes"): Uint8Array {
    const at = this.#need(n, what);
    return this.#bytes.subarray(at, at + n);
  }

  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }

  skip(n: number): void {
    this.#need(Math.min(n, this.remaining), "padding");
  }
}

export interface RawMessage {
  type: number;
  flags: number;
  seq: number;
  port: number;
  /** The payload after the 16-byte header. */
  body: Uint8Array;
}

/** Splits one received datagram into netlink messages. */
export function splitMessages(datagram: Uint8Array): RawMessage[] {
  const out: RawMessage[] = [];
  const r = new Reader(datagram);
  while (r.remaining >= NLMSG_HDRLEN) {
    const len = r.u32("nlmsghdr length");
    if (len < NLMSG_HDRLEN || len - 4 > r.remaining) {
      throw new NetlinkError("NETLINK_MALFORMED", `netlink message length ${len} does not fit the ${r.remaining + 4} bytes left`);
    }
    const type = r.u16();
    const flags = r.u16();
    const seq = r.u32();
    const port = r.u32();
    const body = r.bytes(len - NLMSG_HDRLEN, "netlink message body");
    out.push({ type, flags, seq, port, body });
    r.skip(align4(len) - len);
  }
  if (r.remaining !== 0) {
    throw new NetlinkError("NETLINK_MALFORMED", `${r.remaining} trailing bytes after the last netlink message`);
  }
  return out;
}

/** Attributes by type (first occurrence wins; NLA_F_* flag bits cleared). */
export type Attributes = Map<number, Uint8Array>;

/**
 * Parses a run of attributes (the rest of a message body after its fixed
 * header). With `only`, keeps just those types: a link's message carries
 * some fifty attributes, of which a decoder wants a handful.
 */
export function parseAttributes(bytes: Uint8Array, only?: ReadonlySet<number>): Attributes {
  const out: Attributes = new Map();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; bytes.length - at >= NLA_HDRLEN; ) {
    const len = view.getUint16(at, true);
    const type = view.getUint16(at + 2, true) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN || at + len > bytes.length) {
      throw new NetlinkError("NETLINK_MALFORMED", `attribute ${type} length ${len} does not fit the ${bytes.length - at} bytes left`);
    }
    if ((only === undefined || only.has(type)) && !out.has(type)) out.set(type, bytes.subarray(at + NLA_HDRLEN, at + len));
    at += align4(len);
  }
  return out;
}

/** Reads fixed-size attribute values with a size check naming the attribute. */
export const attr = {
  u8(a: Attributes, type: number, name: string): number | undefined {
    const v = a.get(type);
    return v === undefined ? undefined : new Reader(sized(v, 1, name)).u8();
  },
  u32(a: Attributes, type: number, name: string): number | undefined {
    const v = a.get(type);
    return v === undefined ? undefined : new Reader(sized(v, 4, name)).u32();
  },
  i32(a: Attributes, type: number, name: string): number | undefined {
    const v = a.get(type);
    return v === undefined ? undefined : new Reader(sized(v, 4, name)).i32();
  },
  string(a: Attributes, type: number): string | undefined {
    const v = a.get(type);
    if (v === undefined) return undefined;
    const nul = v.indexOf(0);
    return utf8.decode(nul === -1 ? v : v.subarray(0, nul));
  },
};

function sized(v: Uint8Array, n: number, name: string): Uint8Array {
  if (v.length < n) throw new NetlinkError("NETLINK_MALFORMED", `attribute ${name} has ${v.length} bytes, expected ${n}`);
  return v;
}
