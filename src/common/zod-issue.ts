/** What a failed zod parse says first, as netclaim's errors put it: the field's path, then the reason. */
import type { ZodError } from "zod";

export function firstIssue(error: ZodError): string {
  const issue = error.issues[0];
  return `${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`;
}
