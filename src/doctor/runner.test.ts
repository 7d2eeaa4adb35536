import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fail, pass, warn, type Check } from "./check.ts";
import { exitCode, formatJson, formatText, runChecks } from "./index.ts";

const check = (name: string, run: Check["run"]): Check => ({ name, run });

describe("runChecks", () => {
  it("runChecks keeps the checks' order and flattens checks that report several results", async () => {
    const report = await runChecks([
      check("a", () => Promise.resolve(pass("a", "fine"))),
      check("b", () => Promise.resolve([warn("b", "odd", "look"), pass("b2", "fine")])),
    ]);
    assert.deepEqual(report.checks.map((c) => `${c.status} ${c.name}`), ["PASS a", "WARN b", "PASS b2"]);
    assert.equal(exitCode(report), 0);
  });

  it("runChecks turns a check that throws into its FAIL and runs the rest", async () => {
    const report = await runChecks([check("broken", () => Promise.reject(new Error("boom"))), check("next", () => Promise.resolve(pass("next", "fine")))]);
    assert.deepEqual(report.checks[0], { name: "broken", status: "FAIL", message: "the check itself failed: boom", fix: "report this as a bug in netclaim doctor, with the message" });
    assert.equal(report.checks[1]?.status, "PASS");
    assert.equal(exitCode(report), 1);
  });

  it("runChecks fails a check that does not answer in time", async () => {
    const report = await runChecks([check("hangs", () => new Promise(() => undefined))], { timeoutMs: 20 });
    assert.equal(report.checks[0]?.status, "FAIL");
    assert.match(report.checks[0].message, /no answer within 0.02 s/);
  });
});

describe("formatText and formatJson", () => {
  const report = { checks: [pass("NRI socket", "answers"), fail("RBAC", "may not delete resourceslices", "grant it")] };

  it("formatText prints one line per check, the fix under it, and a summary", () => {
    assert.equal(
      formatText(report),
      "PASS  NRI socket  answers\nFAIL  RBAC        may not delete resourceslices\n                  fix: grant it\n1 passed, 0 warnings, 1 failed\n",
    );
  });

  it("formatJson prints one document with every check and the counts", () => {
    assert.deepEqual(JSON.parse(formatJson(report)), {
      checks: [
        { name: "NRI socket", status: "PASS", message: "answers" },
        { name: "RBAC", status: "FAIL", message: "may not delete resourceslices", fix: "grant it" },
      ],
      summary: { pass: 1, warn: 0, fail: 1 },
    });
  });
});
