/**
 * DRA metrics, declared in one place. `status` is `success`, `failed`, or
 * `noop` (a re-prepare answered from disk, an unprepare of an unknown claim).
 */
import { Counter, Histogram, type Registry } from "prom-client";

export type ClaimOperation = "prepare" | "unprepare";
export type ClaimOperationStatus = "success" | "failed" | "noop";

export class DraMetrics {
  readonly #operations: Counter<"operation" | "status">;
  readonly #seconds: Histogram<"operation">;

  constructor(registry: Registry) {
    this.#operations = new Counter({
      name: "netclaim_dra_claim_operations_total",
      help: "Claim prepare and unprepare operations by outcome",
      labelNames: ["operation", "status"],
      registers: [registry],
    });
    this.#seconds = new Histogram({
      name: "netclaim_dra_claim_operation_seconds",
      help: "Time to prepare or unprepare one claim, lock wait included",
      labelNames: ["operation"],
      buckets: [0.005, 0.025, 0.1, 0.5, 2, 10, 45],
      registers: [registry],
    });
  }

  observe(operation: ClaimOperation, status: ClaimOperationStatus, seconds: number): void {
    this.#operations.inc({ operation, status });
    this.#seconds.observe({ operation }, seconds);
  }
}
