import { NetclaimError } from "../common/errors.ts";

export type CniErrorCode =
  | "CNI_CONFIG" // the NetworkAttachmentDefinition's config cannot be used
  | "CNI_NOT_ALLOWED" // the config asks for what the agent's IPAM policy does not allow; nothing ran
  | "CNI_PLUGIN_NOT_FOUND"
  | "CNI_PLUGIN_FAILED" // the plugin ran and reported an error
  | "CNI_LIMIT" // the plugin ran too long or printed too much, and was killed
  | "CNI_CANCELLED" // the caller gave up (its signal fired); the plugin was killed
  | "CNI_RESULT" // the plugin's output is not a valid CNI result
  | "CNI_SANDBOX"; // netclaim's own namespace for IPAM plugins cannot be set up

/** A CNI failure, naming the plugin and the command it ran. */
export class CniError extends NetclaimError<CniErrorCode> {
  readonly plugin: string;
  /** The CNI error code the plugin reported, if it reported one. */
  readonly cniCode: number | undefined;

  constructor(code: CniErrorCode, plugin: string, message: string, options?: ErrorOptions & { cniCode?: number }) {
    super(code, message, options);
    this.plugin = plugin;
    this.cniCode = options?.cniCode;
  }
}
