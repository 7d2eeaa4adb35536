import type { ZodType } from "zod";
import { NetclaimError } from "../common/errors.ts";
import { firstIssue } from "../common/zod-issue.ts";

export type KubeErrorCode = "KUBE_API" | "KUBE_TRANSPORT" | "KUBE_DECODE";

/**
 * A failed API request. `status` and `reason` come from the API server's
 * Status object (404 NotFound, 409 Conflict/AlreadyExists, 422 Invalid...),
 * so callers branch on them; transport failures have status 0.
 */
export class KubeApiError extends NetclaimError<KubeErrorCode> {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly reason: string;

  constructor(
    code: KubeErrorCode,
    init: { method: string; path: string; status: number; reason: string; message: string },
    options?: ErrorOptions,
  ) {
    super(code, `${init.method} ${init.path}: ${init.status === 0 ? "" : `${init.status} ${init.reason}: `}${init.message}`, options);
    this.method = init.method;
    this.path = init.path;
    this.status = init.status;
    this.reason = init.reason;
  }
}

/** `object`, an API server's answer to GET `path`, as `schema` says a `kind` is; KUBE_DECODE names the first field that is not. */
export function decodeObject<T>(schema: ZodType<T>, object: unknown, kind: string, path: string): T {
  const parsed = schema.safeParse(object);
  if (parsed.success) return parsed.data;
  throw new KubeApiError("KUBE_DECODE", {
    method: "GET",
    path,
    status: 0,
    reason: "",
    message: `unexpected ${kind}: ${firstIssue(parsed.error)}`,
  });
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404;
}

/** What `read` resolves to, or undefined when the API server answers 404 Not Found. */
export async function unlessNotFound<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export function isConflict(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 409;
}

export function isGone(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 410;
}
