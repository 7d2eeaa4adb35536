/**
 * Serves a protobuf-es service descriptor with grpc-js: the descriptor gives
 * the wire path (`/<package>.<Service>/<Method>`) and the message codecs, so
 * one implementation object can be served under several proto packages
 * (DRAPlugin v1 and v1beta1) and no `.proto` file is loaded at run time.
 *
 * Implementations are async functions; a thrown `RpcStatusError` becomes its
 * status, anything else UNKNOWN with the error's message.
 */
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";
import { once } from "node:events";
import { errorMessage } from "../common/errors.ts";
import { RpcStatusError } from "./errors.ts";

export interface CallContext {
  /** Aborted when the client cancels or the call's deadline passes. */
  readonly signal: AbortSignal;
  /** The client's deadline in epoch milliseconds; Infinity when it set none. */
  readonly deadline: number;
  readonly path: string;
}

export interface ServerStreamWriter<Output extends DescMessage> {
  /** Sends one message, waiting while the transport is saturated. */
  send(message: MessageInitShape<Output>): Promise<void>;
}

type UnaryImpl<M extends GenServiceMethods[string]> = (
  request: MessageShape<M["input"]>,
  context: CallContext,
) => Promise<MessageInitShape<M["output"]>>;

type ServerStreamingImpl<M extends GenServiceMethods[string]> = (
  request: MessageShape<M["input"]>,
  stream: ServerStreamWriter<M["output"]>,
  context: CallContext,
) => Promise<void>;

/** One function per method of the service, typed from its descriptor. */
export type ServiceImpl<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]["methodKind"] extends "unary"
    ? UnaryImpl<S[K]>
    : S[K]["methodKind"] extends "server_streaming"
      ? ServerStreamingImpl<S[K]>
      : never;
};

/** Adds `service` to `server`, answered by `impl`. */
export function addService<S extends GenServiceMethods>(server: grpc.Server, service: GenService<S>, impl: ServiceImpl<S>): void {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  const implementations = impl as Record<string, UnaryImpl<GenServiceMethods[string]> | ServerStreamingImpl<GenServiceMethods[string]>>;
  for (const method of (service as unknown as { methods: DescMethod[] }).methods) {
    const fn = implementations[method.localName];
    if (fn === undefined) throw new TypeError(`Cannot serve ${service.typeName}: no implementation of ${method.name}`);
    definition[method.localName] = methodDefinition(method);
    switch (method.methodKind) {
      case "unary":
        handlers[method.localName] = unaryHandler(method, fn as UnaryImpl<GenServiceMethods[string]>);
        break;
      case "server_streaming":
        handlers[method.localName] = serverStreamingHandler(method, fn as ServerStreamingImpl<GenServiceMethods[string]>);
        break;
      case "client_streaming":
      case "bidi_streaming":
        throw new TypeError(`Cannot serve ${service.typeName}.${method.name}: ${method.methodKind} methods are not supported`);
    }
  }
  server.addService(definition, handlers);
}

function methodDefinition(method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (message) => Buffer.from(toBinary(method.input, message as MessageShape<DescMessage>)),
    requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
    responseSerialize: (message) => Buffer.from(toBinary(method.output, message as MessageShape<DescMessage>)),
    responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
  };
}

function unaryHandler(method: DescMethod, fn: UnaryImpl<GenServiceMethods[string]>): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const { context, done } = callContext(call);
    fn(call.request as MessageShape<DescMessage>, context).then(
      (init) => {
        done();
        callback(null, create(method.output, init));
      },
      (err: unknown) => {
        done();
        callback(statusOf(err));
      },
    );
  };
}

function serverStreamingHandler(method: DescMethod, fn: ServerStreamingImpl<GenServiceMethods[string]>): grpc.handleServerStreamingCall<unknown, unknown> {
  return (call) => {
    const { context, done } = callContext(call);
    const writer: ServerStreamWriter<DescMessage> = {
      async send(message) {
        context.signal.throwIfAborted();
        if (!call.write(create(method.output, message))) await once(call, "drain", { signal: context.signal });
      },
    };
    fn(call.request as MessageShape<DescMessage>, writer, context).then(
      () => {
        done();
        if (!call.cancelled) call.end();
      },
      (err: unknown) => {
        done();
        if (!call.cancelled) call.destroy(Object.assign(new Error(errorMessage(err)), statusOf(err)));
      },
    );
  };
}

function callContext(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): { context: CallContext; done: () => void } {
  const controller = new AbortController();
  const raw = call.getDeadline();
  const deadline = raw instanceof Date ? raw.getTime() : raw;
  const onCancel = (): void => {
    controller.abort(new RpcStatusError(grpc.status.CANCELLED, `${call.getPath()}: the client cancelled the call`));
  };
  call.once("cancelled", onCancel);
  const timer = Number.isFinite(deadline)
    ? setTimeout(() => {
        controller.abort(new RpcStatusError(grpc.status.DEADLINE_EXCEEDED, `${call.getPath()}: the call's deadline passed`));
      }, Math.max(0, deadline - Date.now()))
    : undefined;
  return {
    context: { signal: controller.signal, deadline, path: call.getPath() },
    done: () => {
      clearTimeout(timer);
      call.off("cancelled", onCancel);
    },
  };
}

function statusOf(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof RpcStatusError) return { code: err.status, details: err.message };
  return { code: grpc.status.UNKNOWN, details: errorMessage(err) };
}
