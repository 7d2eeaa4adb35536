/** gRPC status codes as ttrpc carries them in `google.rpc.Status.code`. */
export const StatusCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = (typeof StatusCode)[keyof typeof StatusCode];

const names = new Map<number, string>(Object.entries(StatusCode).map(([name, code]) => [code, name]));

/** The name of a status code, or `CODE_<n>` for one outside the table. */
export function statusName(code: number): string {
  return names.get(code) ?? `CODE_${code}`;
}
