import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import { HandlerBudget } from "./budget.ts";

describe("HandlerBudget", () => {
  it("warns once while a handler runs past its share of the request timeout, naming it", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const warnings: Record<string, unknown>[] = [];
      const budget = new HandlerBudget(2000, { warnFraction: 0.5, logger: { warn: (fields) => warnings.push(fields) } });
      budget.requestTimeoutMs = 1000;
      const { promise, resolve } = Promise.withResolvers<string>();
      const tracked = budget.track("RunPodSandbox", "pod ns/a", () => promise);
      mock.timers.tick(499);
      assert.equal(warnings.length, 0);
      mock.timers.tick(1);
      assert.equal(warnings.length, 1);
      assert.deepEqual({ ...warnings[0], elapsedMs: undefined }, { method: "RunPodSandbox", subject: "pod ns/a", elapsedMs: undefined, requestTimeoutMs: 1000 });
      resolve("done");
      assert.equal(await tracked, "done");
      mock.timers.tick(10_000);
      assert.equal(warnings.length, 1);
    } finally {
      mock.timers.reset();
    }
  });

  it("stays quiet for a handler that finishes in time", async () => {
    const warnings: unknown[] = [];
    const budget = new HandlerBudget(2000, { warnFraction: 0.5, logger: { warn: (fields) => warnings.push(fields) } });
    assert.equal(await budget.track("X", "y", () => Promise.resolve(1)), 1);
    assert.deepEqual(warnings, []);
  });

  it("rejects a fraction outside (0, 1)", () => {
    assert.throws(() => new HandlerBudget(2000, { warnFraction: 1, logger: { warn() {} } }), RangeError);
  });
});
