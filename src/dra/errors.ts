import type { status as GrpcStatus } from "@grpc/grpc-js";
import { NetclaimError } from "../common/errors.ts";
import type { ClaimRef } from "./claim.ts";

/**
 * Why a DRA operation failed:
 * - `CLAIM_SOURCE`: the claim's content could not be read (API down, not found).
 * - `CLAIM_UNALLOCATED`: the claim has no allocation yet.
 * - `CLAIM_REPLACED`: the claim under that name has another UID now.
 * - `CLAIM_PREPARE` / `CLAIM_UNPREPARE`: the preparer failed.
 * - `CLAIM_DEADLINE`: the call's budget ran out before the claim was done.
 * - `CLAIM_STATE`: the claim's state on disk could not be read or written.
 * - `DRA_SOCKET`: a socket could not be prepared, bound or removed.
 * - `DRA_RPC`: a whole call is refused with a gRPC status (malformed request).
 */
export type DraErrorCode =
  | "CLAIM_SOURCE"
  | "CLAIM_UNALLOCATED"
  | "CLAIM_REPLACED"
  | "CLAIM_PREPARE"
  | "CLAIM_UNPREPARE"
  | "CLAIM_DEADLINE"
  | "CLAIM_STATE"
  | "DRA_SOCKET"
  | "DRA_RPC";

export class DraError extends NetclaimError<DraErrorCode> {}

/** A failure about one claim; the message names it (namespace/name and UID). */
export class ClaimError extends DraError {
  readonly claim: ClaimRef;

  constructor(code: Exclude<DraErrorCode, "DRA_SOCKET" | "DRA_RPC">, claim: ClaimRef, detail: string, options?: ErrorOptions) {
    super(code, `claim ${describeClaim(claim)}: ${detail}`, options);
    this.claim = claim;
  }
}

/** A socket problem; carries the path. */
export class DraSocketError extends DraError {
  readonly path: string;

  constructor(path: string, detail: string, options?: ErrorOptions) {
    super("DRA_SOCKET", `Cannot serve DRA socket ${path}: ${detail}`, options);
    this.path = path;
  }
}

export function describeClaim(claim: ClaimRef): string {
  return `${claim.namespace}/${claim.name} (uid ${claim.uid})`;
}

/** Fails a whole gRPC call with `status`. */
export class RpcStatusError extends DraError {
  readonly status: GrpcStatus;

  constructor(status: GrpcStatus, message: string) {
    super("DRA_RPC", message);
    this.status = status;
  }
}
