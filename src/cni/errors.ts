import { NetclaimError } from "../common/errors.ts";

export type CniErrorCode =
  | "CNI_CONFIG" // the NetworkAttachmentDefinition's config cannot be used
  | "CNI_PLUGIN_NOT_FOUND"
  | "CNI_PLUGIN_FAILED" // the plugin ran and reported an error
  | "CNI_RESULT"; // the plugin's output is not a valid CNI result

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
