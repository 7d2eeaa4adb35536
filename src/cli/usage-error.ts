import { NetclaimError } from "../common/errors.ts";

/** A command line the user got wrong; printed without a stack trace. */
export class UsageError extends NetclaimError<"USAGE"> {
  constructor(message: string) {
    super("USAGE", message);
  }
}
