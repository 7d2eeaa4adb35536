import { NetclaimError } from "../common/errors.ts";

export type ClaimPrepareErrorCode =
  | "CLAIM_NOT_ALLOCATED"
  | "CLAIM_NOT_RESERVED" // not reserved for exactly one pod
  | "CLAIM_INVALID_CONFIG"
  | "CLAIM_DEVICE_MISSING"
  | "CLAIM_WRONG_POOL"
  | "INTERFACE_NAME_TAKEN" // a configured interface name that the pod's Multus network (or another device of the claim) has
  | "RUNTIME_NOT_CONNECTED"
  | "IPAM_NOT_ALLOWED" // the node's IPAM policy refuses the NetworkAttachmentDefinition; nothing ran
  | "IPAM_FAILED";

/**
 * Why a claim cannot be prepared. The message is what the user sees in the
 * kubelet's FailedPrepareDynamicResources event, so it names the claim, the
 * device and the field, and says what to do.
 */
export class ClaimPrepareError extends NetclaimError<ClaimPrepareErrorCode> {
  readonly claim: string;

  constructor(code: ClaimPrepareErrorCode, claim: string, message: string, options?: ErrorOptions) {
    super(code, `claim ${claim}: ${message}`, options);
    this.claim = claim;
  }
}
