import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { RequestSchema, ResponseSchema } from "../gen/ttrpc/ttrpc_pb.js";
import { errorMessage } from "../common/errors.ts";
import { NriHandlerError } from "./errors.ts";
import type { ConnId, MuxConnectionSink, TrunkMux } from "./mux.ts";
import { StatusCode } from "./status.ts";
import { FrameParser, MessageType, MESSAGE_LENGTH_MAX, type FrameHeader } from "./ttrpc-frame.ts";

export interface CallContext {
  readonly service: string;
  readonly method: string;
  readonly streamId: number;
  /** Aborted at the caller's deadline (`timeout_nano`) or when the connection ends. */
  readonly signal: AbortSignal;
  /** The caller's deadline in `performance.now()` milliseconds, if it sent one. */
  readonly deadline: number | undefined;
}

/** Decodes the request payload, does the work, returns the encoded response. */
export type UnaryHandler = (payload: Uint8Array, call: CallContext) => Promise<Uint8Array>;

/** service name → method name → handler */
export type ServiceTable = ReadonlyMap<string, ReadonlyMap<string, UnaryHandler>>;

export interface TtrpcServerEvents {
  /** A request failed: a handler threw, or the peer sent something we refused. */
  onCallError?(call: { method: string; streamId: number }, status: number, message: string): void;
}

/**
 * The serving side of one ttrpc connection. Requests run concurrently and are
 * answered on their own stream in whatever order they finish. Unknown
 * services and methods get UNIMPLEMENTED (NRI v0.12 runtimes fall back to
 * StateChange on exactly that code); bad envelopes get INVALID_ARGUMENT and
 * oversized requests RESOURCE_EXHAUSTED, each on its stream only.
 */
export class TtrpcServer implements MuxConnectionSink {
  readonly #mux: TrunkMux;
  readonly #connId: ConnId;
  readonly #services: ServiceTable;
  readonly #events: TtrpcServerEvents;
  readonly #parser = new FrameParser();
  readonly #inFlight = new Set<AbortController>();
  #lastStreamId = 0;

  constructor(mux: TrunkMux, connId: ConnId, services: ServiceTable, events: TtrpcServerEvents = {}) {
    this.#mux = mux;
    this.#connId = connId;
    this.#services = services;
    this.#events = events;
    mux.open(connId, this);
    void mux.closed.then((err) => {
      for (const controller of this.#inFlight) controller.abort(err);
    });
  }

  onData(chunk: Buffer): void {
    for (const frame of this.#parser.push(chunk)) {
      if (frame.header.type !== MessageType.REQUEST) continue; // responses and stream data are not ours to serve
      if (frame.kind === "oversized") {
        this.#fail(frame.header.streamId, "", StatusCode.RESOURCE_EXHAUSTED, `message length ${frame.header.length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`);
        continue;
      }
      this.#onRequest(frame.header, frame.data);
    }
  }

  #onRequest(header: FrameHeader, data: Buffer): void {
    const { streamId } = header;
    if (streamId % 2 === 0) {
      this.#fail(streamId, "", StatusCode.INVALID_ARGUMENT, "StreamID must be odd for client initiated streams");
      return;
    }
    if (streamId <= this.#lastStreamId) {
      this.#fail(streamId, "", StatusCode.INVALID_ARGUMENT, "StreamID cannot be re-used and must increment");
      return;
    }
    this.#lastStreamId = streamId;
    let request;
    try {
      request = fromBinary(RequestSchema, data);
    } catch (err) {
      this.#fail(streamId, "", StatusCode.INVALID_ARGUMENT, `unmarshal request error: ${errorMessage(err)}`);
      return;
    }
    const methods = this.#services.get(request.service);
    if (methods === undefined) {
      this.#fail(streamId, request.method, StatusCode.UNIMPLEMENTED, `service ${request.service}`);
      return;
    }
    const handler = methods.get(request.method);
    if (handler === undefined) {
      this.#fail(streamId, request.method, StatusCode.UNIMPLEMENTED, `method ${request.method}`);
      return;
    }
    void this.#serve(handler, { service: request.service, method: request.method, streamId, timeoutNano: request.timeoutNano }, request.payload);
  }

  async #serve(handler: UnaryHandler, call: { service: string; method: string; streamId: number; timeoutNano: bigint }, payload: Uint8Array): Promise<void> {
    const controller = new AbortController();
    this.#inFlight.add(controller);
    let timer: NodeJS.Timeout | undefined;
    let deadline: number | undefined;
    if (call.timeoutNano > 0n) {
      const ms = Number(call.timeoutNano / 1_000_000n);
      deadline = performance.now() + ms;
      timer = setTimeout(() => {
        controller.abort(new NriHandlerError(StatusCode.DEADLINE_EXCEEDED, `${call.method}: deadline of ${ms} ms exceeded`));
      }, ms);
    }
    try {
      const response = await handler(payload, { service: call.service, method: call.method, streamId: call.streamId, signal: controller.signal, deadline });
      if (response.length > MESSAGE_LENGTH_MAX) {
        this.#fail(call.streamId, call.method, StatusCode.RESOURCE_EXHAUSTED, `response of ${response.length} bytes exceeds the maximum message size of ${MESSAGE_LENGTH_MAX}`);
        return;
      }
      this.#send(call.streamId, toBinary(ResponseSchema, create(ResponseSchema, { payload: response })));
    } catch (err) {
      const status = err instanceof NriHandlerError ? err.status : StatusCode.UNKNOWN;
      this.#fail(call.streamId, call.method, status, errorMessage(err));
    } finally {
      clearTimeout(timer);
      this.#inFlight.delete(controller);
    }
  }

  #fail(streamId: number, method: string, code: number, message: string): void {
    this.#events.onCallError?.({ method, streamId }, code, message);
    this.#send(streamId, toBinary(ResponseSchema, create(ResponseSchema, { status: { code, message } })));
  }

  #send(streamId: number, response: Uint8Array): void {
    // A reply after the runtime dropped us has nowhere to go.
    if (this.#mux.error) return;
    this.#mux.writeMessage(this.#connId, { streamId, type: MessageType.RESPONSE, flags: 0 }, response);
  }
}
