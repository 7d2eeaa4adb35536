import { NetclaimError } from "../common/errors.ts";
import { statusName, type StatusCode } from "./status.ts";

/**
 * Why an NRI or ttrpc operation failed:
 * - `TTRPC_STATUS`: the peer (or our own size check) answered one call with a
 *   gRPC status; the connection is fine.
 * - `TTRPC_CLOSED`: the connection ended; every pending call fails with it.
 * - `TTRPC_PROTOCOL`: the byte stream cannot be parsed any more (desync); the
 *   connection is closed.
 * - `TTRPC_TIMEOUT`: a call got no answer before its deadline.
 * - `NRI_REGISTRATION`: registering, configuring or synchronizing failed.
 * - `NRI_HANDLER`: a handler asked to fail an event with a chosen status.
 */
export type NriErrorCode =
  | "TTRPC_STATUS"
  | "TTRPC_CLOSED"
  | "TTRPC_PROTOCOL"
  | "TTRPC_TIMEOUT"
  | "NRI_REGISTRATION"
  | "NRI_HANDLER";

export class NriError extends NetclaimError<NriErrorCode> {}

/** A gRPC status for one ttrpc call, carrying the method and stream it concerns. */
export class TtrpcStatusError extends NriError {
  readonly status: number;
  readonly method: string;
  readonly streamId: number;

  constructor(status: number, detail: string, where: { method: string; streamId: number }) {
    super("TTRPC_STATUS", `${where.method} (stream ${where.streamId}): ${statusName(status)}: ${detail}`);
    this.status = status;
    this.method = where.method;
    this.streamId = where.streamId;
  }
}

/**
 * Thrown by a handler to fail an event with a specific status (the runtime
 * passes it to the CRI caller). Anything else a handler throws becomes UNKNOWN.
 */
export class NriHandlerError extends NriError {
  readonly status: StatusCode;

  constructor(status: StatusCode, message: string, options?: ErrorOptions) {
    super("NRI_HANDLER", message, options);
    this.status = status;
  }
}
