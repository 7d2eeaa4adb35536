import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deepFreeze } from "../common/deep-freeze.ts";
import { parseClaimPlan } from "./plan.ts";

const stored = (): Record<string, unknown> => ({
  version: 1,
  claim: { namespace: "team-a", name: "nic", uid: "claim-uid" },
  pod: { namespace: "team-a", name: "app", uid: "pod-uid" },
  devices: [],
});

describe("parseClaimPlan", () => {
  it("parses a frozen stored value once, and hands out a plan no caller can change", () => {
    const value = deepFreeze(stored());
    const first = parseClaimPlan(value, "claim team-a/nic");
    assert.equal(parseClaimPlan(value, "claim team-a/nic"), first);
    assert.throws(() => {
      (first as { devices: unknown[] }).devices.push({});
    }, TypeError);
  });

  it("parses a value that can still change every time", () => {
    const value = stored();
    parseClaimPlan(value, "claim team-a/nic");
    value.version = 2;
    assert.throws(() => parseClaimPlan(value, "claim team-a/nic"), /stored plan of claim team-a\/nic: version/);
  });
});
