import { ByteQueue } from "./byte-queue.ts";
import { NriError } from "./errors.ts";

/**
 * ttrpc framing (containerd/ttrpc channel.go). Every message is a 10-byte
 * big-endian header followed by its data:
 *
 *   0       4          8      9       10
 *   | length | streamID | type | flags | data (length bytes)
 *
 * `length` counts the data only and may not exceed 4 MiB. A longer message is
 * skipped and reported for its stream (RESOURCE_EXHAUSTED), so the
 * connection survives; a header we cannot trust (an unknown message type) is a
 * desync and ends the connection.
 */
export const FRAME_HEADER_LENGTH = 10;
export const MESSAGE_LENGTH_MAX = 4 << 20;

export const MessageType = { REQUEST: 1, RESPONSE: 2, DATA: 3 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export interface FrameHeader {
  readonly length: number;
  readonly streamId: number;
  readonly type: number;
  readonly flags: number;
}

export type ParsedFrame =
  | { readonly kind: "message"; readonly header: FrameHeader; readonly data: Buffer }
  /** A message over MESSAGE_LENGTH_MAX: its bytes are dropped, its stream gets an error. */
  | { readonly kind: "oversized"; readonly header: FrameHeader };

export function encodeFrameHeader(target: Buffer, offset: number, header: FrameHeader): void {
  target.writeUInt32BE(header.length, offset);
  target.writeUInt32BE(header.streamId, offset + 4);
  target.writeUInt8(header.type, offset + 8);
  target.writeUInt8(header.flags, offset + 9);
}

export function decodeFrameHeader(bytes: Buffer): FrameHeader {
  if (bytes.length < FRAME_HEADER_LENGTH) {
    throw new RangeError(`Cannot decode ttrpc header: ${bytes.length} of ${FRAME_HEADER_LENGTH} bytes`);
  }
  return {
    length: bytes.readUInt32BE(0),
    streamId: bytes.readUInt32BE(4),
    type: bytes.readUInt8(8),
    flags: bytes.readUInt8(9),
  };
}

/** One whole ttrpc message (header and data) as one buffer. */
export function encodeFrame(streamId: number, type: MessageType, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + data.length);
  encodeFrameHeader(out, 0, { length: data.length, streamId, type, flags: 0 });
  out.set(data, FRAME_HEADER_LENGTH);
  return out;
}

/**
 * Incremental ttrpc frame parser: feed it bytes in any split, get whole
 * frames. Peek, check the cap, consume: it never allocates more than
 * MESSAGE_LENGTH_MAX for a message, whatever length a peer claims.
 */
export class FrameParser {
  readonly #queue = new ByteQueue();
  /** Bytes of an oversized message still to drop. */
  #skipping = 0;

  /** Adds bytes and returns every frame now complete. Throws a TTRPC_PROTOCOL NriError when the stream is corrupt. */
  push(chunk: Buffer): ParsedFrame[] {
    this.#queue.push(chunk);
    const frames: ParsedFrame[] = [];
    for (;;) {
      if (this.#skipping > 0) {
        this.#skipping -= this.#queue.discard(this.#skipping);
        if (this.#skipping > 0) return frames;
      }
      if (this.#queue.length < FRAME_HEADER_LENGTH) return frames;
      const header = decodeFrameHeader(this.#queue.peek(FRAME_HEADER_LENGTH));
      if (header.type !== MessageType.REQUEST && header.type !== MessageType.RESPONSE && header.type !== MessageType.DATA) {
        throw new NriError("TTRPC_PROTOCOL", `Cannot parse ttrpc frame: unknown message type ${header.type} on stream ${header.streamId}`);
      }
      if (header.length > MESSAGE_LENGTH_MAX) {
        this.#queue.discard(FRAME_HEADER_LENGTH);
        this.#skipping = header.length;
        frames.push({ kind: "oversized", header });
        continue;
      }
      if (this.#queue.length < FRAME_HEADER_LENGTH + header.length) return frames;
      this.#queue.discard(FRAME_HEADER_LENGTH);
      frames.push({ kind: "message", header, data: this.#queue.take(header.length) });
    }
  }
}
