import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { RequestSchema, ResponseSchema } from "../gen/ttrpc/ttrpc_pb.js";
import { errorMessage } from "../common/errors.ts";
import { NriError, TtrpcStatusError } from "./errors.ts";
import type { ConnId, MuxConnectionSink, TrunkMux } from "./mux.ts";
import { StatusCode } from "./status.ts";
import { FrameParser, MessageType, MESSAGE_LENGTH_MAX } from "./ttrpc-frame.ts";

interface PendingCall {
  readonly method: string;
  resolve(payload: Uint8Array): void;
  reject(err: Error): void;
}

export interface CallOptions {
  /** Sent as `timeout_nano`; the call fails with TTRPC_TIMEOUT when it passes. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * The calling side of one ttrpc connection: odd, increasing stream IDs,
 * replies matched by stream in any order, a late reply to a finished call
 * dropped. When the connection ends every pending call fails with its error.
 */
export class TtrpcClient implements MuxConnectionSink {
  readonly #mux: TrunkMux;
  readonly #connId: ConnId;
  readonly #parser = new FrameParser();
  readonly #pending = new Map<number, PendingCall>();
  #nextStreamId = 1;

  constructor(mux: TrunkMux, connId: ConnId) {
    this.#mux = mux;
    this.#connId = connId;
    mux.open(connId, this);
    void mux.closed.then((err) => {
      for (const call of this.#pending.values()) call.reject(err);
      this.#pending.clear();
    });
  }

  call(service: string, method: string, payload: Uint8Array, options: CallOptions = {}): Promise<Uint8Array> {
    if (this.#mux.error) return Promise.reject(this.#mux.error);
    if (options.signal?.aborted) return Promise.reject(new NriError("TTRPC_CLOSED", `${method}: cancelled before it was sent`, { cause: options.signal.reason }));
    const streamId = this.#nextStreamId;
    this.#nextStreamId += 2;
    const request = toBinary(
      RequestSchema,
      create(RequestSchema, { service, method, payload, timeoutNano: BigInt(Math.round((options.timeoutMs ?? 0) * 1e6)) }),
    );
    if (request.length > MESSAGE_LENGTH_MAX) {
      return Promise.reject(new TtrpcStatusError(StatusCode.RESOURCE_EXHAUSTED, `message length ${request.length} exceeds maximum message size of ${MESSAGE_LENGTH_MAX}`, { method, streamId }));
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => {
        finish();
        reject(new NriError("TTRPC_CLOSED", `${method} (stream ${streamId}): cancelled`, { cause: options.signal?.reason }));
      };
      const finish = (): void => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        this.#pending.delete(streamId);
      };
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          finish();
          reject(new NriError("TTRPC_TIMEOUT", `${method} (stream ${streamId}): no reply within ${options.timeoutMs} ms`));
        }, options.timeoutMs);
      }
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(streamId, {
        method,
        resolve: (p) => {
          finish();
          resolve(p);
        },
        reject: (e) => {
          finish();
          reject(e);
        },
      });
      this.#mux.writeMessage(this.#connId, { streamId, type: MessageType.REQUEST, flags: 0 }, request);
    });
  }

  onData(chunk: Buffer): void {
    for (const frame of this.#parser.push(chunk)) {
      if (frame.header.type !== MessageType.RESPONSE) continue;
      const call = this.#pending.get(frame.header.streamId);
      if (call === undefined) continue; // finished or never ours: dropped, as Go does
      const where = { method: call.method, streamId: frame.header.streamId };
      if (frame.kind === "oversized") {
        call.reject(new TtrpcStatusError(StatusCode.RESOURCE_EXHAUSTED, `message length ${frame.header.length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`, where));
        continue;
      }
      let response;
      try {
        response = fromBinary(ResponseSchema, frame.data);
      } catch (err) {
        call.reject(new TtrpcStatusError(StatusCode.INTERNAL, `cannot decode response: ${errorMessage(err)}`, where));
        continue;
      }
      const code = response.status?.code ?? 0;
      if (code !== 0) call.reject(new TtrpcStatusError(code, response.status?.message ?? "", where));
      else call.resolve(response.payload);
    }
  }
}
