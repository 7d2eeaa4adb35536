/**
 * The base of every error netclaim raises on purpose. Each layer defines its
 * own subclasses with a literal `code`, and carries the identity of what
 * failed (claim, device, stream, field) so a log line or a claim condition
 * can say exactly what to fix.
 */
export class NetclaimError<Code extends string = string> extends Error {
  readonly code: Code;

  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The message of any thrown value, for logs and wire errors. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
