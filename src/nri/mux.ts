import type { Duplex } from "node:stream";
import { ByteQueue } from "./byte-queue.ts";
import { NriError } from "./errors.ts";
import { encodeFrameHeader, FRAME_HEADER_LENGTH, MESSAGE_LENGTH_MAX, type FrameHeader } from "./ttrpc-frame.ts";

/**
 * The NRI multiplexer (containerd/nri pkg/net/multiplex): two ttrpc
 * connections share one unix stream socket, the trunk. Each trunk frame is
 *
 *   0        4        8
 *   | connID | length | payload (length bytes)
 *
 * big-endian. Connection 1 carries the Plugin service (we serve), connection
 * 2 the Runtime service (we call). Frame boundaries mean nothing to ttrpc: each
 * connection is a byte stream. Frames for a connection nobody opened are
 * dropped, as the Go mux does.
 *
 * Writing follows the Go reader's limits: its mux hands one trunk frame to a
 * 4096-byte bufio.Reader and fails with ENOMEM on a bigger frame that starts
 * a message. So each ttrpc message goes out exactly as Go's own writer sends
 * it: the first min(T, 4096) bytes in one frame, the rest in a second frame,
 * and never two messages in one frame.
 */
export const ConnId = { PLUGIN_SERVICE: 1, RUNTIME_SERVICE: 2 } as const;
export type ConnId = (typeof ConnId)[keyof typeof ConnId];

const TRUNK_HEADER_LENGTH = 8;
/** The largest payload the Go mux writes in one frame (a ttrpc header plus 4 MiB). */
export const TRUNK_PAYLOAD_MAX = FRAME_HEADER_LENGTH + MESSAGE_LENGTH_MAX;
/** The Go peer's bufio.Reader size: the largest frame that may start a message. */
export const GO_READ_BUFFER = 4096;
/**
 * Bytes we let queue in the socket while the runtime does not read. NRI is
 * request/response, so a healthy runtime keeps this near zero; past it the
 * runtime is stuck and the connection is dropped rather than buffering on.
 */
const WRITE_BACKLOG_MAX = 64 << 20;

export interface MuxConnectionSink {
  /** Bytes for this connection, in order. Throwing closes the whole trunk. */
  onData(chunk: Buffer): void;
}

/**
 * Owns the trunk socket. The first error (a desync, a socket error, a close)
 * is sticky: it is what `closed` resolves with, and close is idempotent.
 */
export class TrunkMux {
  readonly #socket: Duplex;
  readonly #queue = new ByteQueue();
  readonly #sinks = new Map<number, MuxConnectionSink>();
  #error: NriError | undefined;
  readonly #closed: Promise<NriError>;
  #resolveClosed!: (err: NriError) => void;

  constructor(socket: Duplex) {
    this.#socket = socket;
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    socket.on("data", (chunk: Buffer) => {
      this.#onData(chunk);
    });
    socket.on("end", () => {
      this.close(new NriError("TTRPC_CLOSED", "NRI socket closed by the runtime"));
    });
    socket.on("close", () => {
      this.close(new NriError("TTRPC_CLOSED", "NRI socket closed"));
    });
    socket.on("error", (err) => {
      this.close(new NriError("TTRPC_CLOSED", `NRI socket failed: ${err.message}`, { cause: err }));
    });
  }

  /** Resolves with the first error once the trunk is closed. */
  get closed(): Promise<NriError> {
    return this.#closed;
  }

  get error(): NriError | undefined {
    return this.#error;
  }

  open(id: ConnId, sink: MuxConnectionSink): void {
    this.#sinks.set(id, sink);
  }

  /**
   * Writes one ttrpc message on a connection as one or two trunk frames (see
   * the class comment), with a single copy of `data` and a single write.
   */
  writeMessage(id: ConnId, header: Omit<FrameHeader, "length">, data: Uint8Array): void {
    if (this.#error) throw this.#error;
    const total = FRAME_HEADER_LENGTH + data.length;
    const head = Math.min(total, GO_READ_BUFFER);
    const split = total > head;
    const out = Buffer.allocUnsafe(total + TRUNK_HEADER_LENGTH * (split ? 2 : 1));
    out.writeUInt32BE(id, 0);
    out.writeUInt32BE(head, 4);
    encodeFrameHeader(out, TRUNK_HEADER_LENGTH, { ...header, length: data.length });
    const headData = head - FRAME_HEADER_LENGTH;
    out.set(data.subarray(0, headData), TRUNK_HEADER_LENGTH + FRAME_HEADER_LENGTH);
    if (split) {
      const at = TRUNK_HEADER_LENGTH + head;
      out.writeUInt32BE(id, at);
      out.writeUInt32BE(total - head, at + 4);
      out.set(data.subarray(headData), at + TRUNK_HEADER_LENGTH);
    }
    this.#socket.write(out);
    if (this.#socket.writableLength > WRITE_BACKLOG_MAX) {
      this.close(new NriError("TTRPC_PROTOCOL", `NRI runtime is not reading: ${this.#socket.writableLength} bytes queued`));
    }
  }

  close(err: NriError = new NriError("TTRPC_CLOSED", "NRI connection closed")): void {
    if (this.#error) return;
    this.#error = err;
    this.#socket.destroy();
    this.#resolveClosed(err);
  }

  #onData(chunk: Buffer): void {
    if (this.#error) return;
    this.#queue.push(chunk);
    try {
      while (this.#queue.length >= TRUNK_HEADER_LENGTH) {
        const header = this.#queue.peek(TRUNK_HEADER_LENGTH);
        const connId = header.readUInt32BE(0);
        const length = header.readUInt32BE(4);
        if (connId === 0 || length > TRUNK_PAYLOAD_MAX) {
          throw new NriError("TTRPC_PROTOCOL", `Cannot demultiplex NRI trunk frame: connection ${connId}, length ${length} (max ${TRUNK_PAYLOAD_MAX})`);
        }
        if (this.#queue.length < TRUNK_HEADER_LENGTH + length) return;
        this.#queue.discard(TRUNK_HEADER_LENGTH);
        const payload = this.#queue.take(length);
        this.#sinks.get(connId)?.onData(payload);
      }
    } catch (err) {
      this.close(err instanceof NriError ? err : new NriError("TTRPC_PROTOCOL", `NRI connection failed: ${String(err)}`, { cause: err }));
    }
  }
}
