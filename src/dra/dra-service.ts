/**
 * DRAPlugin NodePrepareResources / NodeUnprepareResources, one
 * implementation for every served version (v1 and v1beta1 are field for
 * field the same, except v1's Device.share_id).
 *
 * Answers follow the kubelet's rules: an entry for every requested claim
 * (the kubelet rejects an answer with one missing), per-claim errors in the
 * entry, and a whole-call error only for a malformed request.
 */
import { status } from "@grpc/grpc-js";
import type { ClaimRef, PreparedDevice } from "./claim.ts";
import type { ClaimService } from "./claim-service.ts";
import { RpcStatusError } from "./errors.ts";
import type { CallContext } from "./grpc-service.ts";

/** The kubelet waits 45 s per call; we answer before that. */
export const DEFAULT_CALL_BUDGET_MS = 40_000;
/** Time kept back from the client's own deadline to send the answer. */
const ANSWER_MARGIN_MS = 1_000;

export interface DraServiceOptions {
  claims: ClaimService;
  /** The most a call may take, however long the client would wait. */
  callBudgetMs: number;
  /** v1 carries Device.share_id; v1beta1 has no such field. */
  withShareID: boolean;
}

interface WireClaims {
  readonly claims: readonly ClaimRef[];
}

interface WireDevice {
  requestNames: string[];
  poolName: string;
  deviceName: string;
  cdiDeviceIds: string[];
  shareId?: string;
}

export function draPluginService(options: DraServiceOptions) {
  return {
    async nodePrepareResources(request: WireClaims, context: CallContext) {
      const claims = validClaims(request.claims, context.path);
      const outcomes = await withCallBudget(context, options.callBudgetMs, (budget) => options.claims.prepareClaims(claims, budget));
      const entries = [...outcomes].map(([uid, outcome]) => [
        uid,
        outcome.ok ? { devices: outcome.value.map((d) => wireDevice(d, options.withShareID)), error: "" } : { devices: [], error: outcome.error.message },
      ]);
      return { claims: Object.fromEntries(entries) as Record<string, { devices: WireDevice[]; error: string }> };
    },

    async nodeUnprepareResources(request: WireClaims, context: CallContext) {
      const claims = validClaims(request.claims, context.path);
      const outcomes = await withCallBudget(context, options.callBudgetMs, (budget) => options.claims.unprepareClaims(claims, budget));
      const entries = [...outcomes].map(([uid, outcome]) => [uid, { error: outcome.ok ? "" : outcome.error.message }]);
      return { claims: Object.fromEntries(entries) as Record<string, { error: string }> };
    },
  };
}

function wireDevice(device: PreparedDevice, withShareID: boolean): WireDevice {
  return {
    requestNames: [...device.requestNames],
    poolName: device.poolName,
    deviceName: device.deviceName,
    cdiDeviceIds: [...device.cdiDeviceIDs],
    ...(withShareID && device.shareID !== undefined ? { shareId: device.shareID } : {}),
  };
}

/** Every claim must name namespace, uid and name (all REQUIRED in the API). */
function validClaims(claims: readonly ClaimRef[], path: string): ClaimRef[] {
  return claims.map((claim, i) => {
    for (const field of ["namespace", "uid", "name"] as const) {
      if (claim[field] === "") throw new RpcStatusError(status.INVALID_ARGUMENT, `${path}: claims[${i}].${field} is empty`);
    }
    return { namespace: claim.namespace, uid: claim.uid, name: claim.name };
  });
}

/**
 * Runs `fn` with a signal that aborts when the call's budget runs out: the
 * smaller of `maxMs` and the client's deadline less a margin to answer.
 */
async function withCallBudget<T>(context: CallContext, maxMs: number, fn: (budget: AbortSignal) => Promise<T>): Promise<T> {
  const ms = Math.max(0, Math.min(maxMs, context.deadline - Date.now() - ANSWER_MARGIN_MS));
  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort(new Error(`the call's ${ms} ms budget ran out`));
  }, ms);
  try {
    return await fn(AbortSignal.any([controller.signal, context.signal]));
  } finally {
    clearTimeout(timer);
  }
}
