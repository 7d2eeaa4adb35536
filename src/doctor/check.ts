/**
 * What a doctor check reports: one line per fact, PASS, WARN or FAIL, and for
 * WARN and FAIL the one thing to do about it. A check is a small async
 * function over the dependencies it names (files, sockets, the API client,
 * netlink), so each can be tested with fakes.
 */
export type CheckStatus = "PASS" | "WARN" | "FAIL";

export interface CheckResult {
  /** Short and stable, "NRI socket": scripts match on it in the JSON output. */
  readonly name: string;
  readonly status: CheckStatus;
  /** What was found, one line. */
  readonly message: string;
  /** What to do; present for WARN and FAIL. */
  readonly fix?: string;
}

export interface Check {
  readonly name: string;
  /** One result or several (the RBAC check reports each permission it found denied). */
  run(signal: AbortSignal): Promise<CheckResult | readonly CheckResult[]>;
}

export function pass(name: string, message: string): CheckResult {
  return { name, status: "PASS", message };
}

export function warn(name: string, message: string, fix: string): CheckResult {
  return { name, status: "WARN", message, fix };
}

export function fail(name: string, message: string, fix: string): CheckResult {
  return { name, status: "FAIL", message, fix };
}
