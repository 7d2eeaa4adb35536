/**
 * Runs the checks one after another (their output reads in the order a
 * person would fix things) and formats what they found. A check that throws
 * is a FAIL of that check, never the end of the run: the point of `doctor`
 * is to say everything that is wrong at once.
 */
import { errorMessage } from "../common/errors.ts";
import type { Check, CheckResult } from "./check.ts";

/** Each check's time limit: a socket or an API server that never answers must not hang the run. */
export const CHECK_TIMEOUT_MS = 10_000;

export interface DoctorReport {
  readonly checks: readonly CheckResult[];
}

export async function runChecks(checks: readonly Check[], options: { timeoutMs?: number } = {}): Promise<DoctorReport> {
  const results: CheckResult[] = [];
  for (const check of checks) {
    const signal = AbortSignal.timeout(options.timeoutMs ?? CHECK_TIMEOUT_MS);
    try {
      const found = await Promise.race([check.run(signal), aborted(signal)]);
      results.push(...(Array.isArray(found) ? (found as readonly CheckResult[]) : [found as CheckResult]));
    } catch (err) {
      const timedOut = signal.aborted;
      results.push({
        name: check.name,
        status: "FAIL",
        message: timedOut ? `no answer within ${String((options.timeoutMs ?? CHECK_TIMEOUT_MS) / 1000)} s` : `the check itself failed: ${errorMessage(err)}`,
        fix: timedOut ? "whatever this check asks (a socket, the API server) does not answer: see docs/troubleshooting.md" : "report this as a bug in netclaim doctor, with the message",
      });
    }
  }
  return { checks: results };
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    signal.addEventListener("abort", () => {
      reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
    }, { once: true });
  });
}

/** 1 when any check failed: the node cannot work as it is. */
export function exitCode(report: DoctorReport): number {
  return report.checks.some((c) => c.status === "FAIL") ? 1 : 0;
}

export function formatText(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = report.checks.flatMap((c) => [
    `${c.status}  ${c.name.padEnd(width)}  ${c.message}`,
    ...(c.fix === undefined ? [] : [`      ${"".padEnd(width)}  fix: ${c.fix}`]),
  ]);
  const count = (status: CheckResult["status"]): number => report.checks.filter((c) => c.status === status).length;
  return `${lines.join("\n")}\n${String(count("PASS"))} passed, ${String(count("WARN"))} warnings, ${String(count("FAIL"))} failed\n`;
}

/** One JSON document: `{"checks": [{"name", "status", "message", "fix"?}], "summary": {...}}`. */
export function formatJson(report: DoctorReport): string {
  const summary = { pass: 0, warn: 0, fail: 0 };
  for (const c of report.checks) {
    if (c.status === "PASS") summary.pass++;
    else if (c.status === "WARN") summary.warn++;
    else summary.fail++;
  }
  return `${JSON.stringify({ checks: report.checks, summary }, null, 2)}\n`;
}
