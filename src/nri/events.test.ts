import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { eventBit, hasDefaultValidator, NriEvent, validEventsFor } from "./events.ts";

describe("NRI events", () => {
  it("eventBit maps event n to bit n-1", () => {
    assert.equal(eventBit(NriEvent.RUN_POD_SANDBOX), 0x1);
    assert.equal(eventBit(NriEvent.CREATE_CONTAINER), 0x8);
    assert.equal(eventBit(NriEvent.VALIDATE_CONTAINER_ADJUSTMENT), 0x2000);
  });

  for (const [runtimeName, runtimeVersion, nriVersion, expected] of [
    ["nri-runtime-peer", "v0.12.5", "v0.12.5", 0x3fff],
    ["containerd", "v2.3.0", "v0.9.0", 0x7ff], // the runtime's own NRI version wins
    ["containerd", "v2.1.4", "", 0x7ff],
    ["containerd", "2.2.1", "", 0x3fff],
    ["containerd", "v1.7.27", "", 0x7ff],
    ["cri-o", "1.33.2", "", 0x7ff],
    ["cri-o", "1.34.0", "", 0x3fff],
    ["someruntime", "v9.0.0", "", 0x7ff],
    ["containerd", "", "", 0x7ff],
  ] as const) {
    it(`validEventsFor ${runtimeName} ${runtimeVersion || "(no version)"} NRI ${nriVersion || "(unsaid)"} is 0x${expected.toString(16)}`, () => {
      assert.equal(validEventsFor({ runtimeName, runtimeVersion, nriVersion }), expected);
    });
    // The default validator came with the same NRI release (v0.10) as the events of 0x3fff.
    it(`hasDefaultValidator ${runtimeName} ${runtimeVersion || "(no version)"} NRI ${nriVersion || "(unsaid)"} is ${String(expected === 0x3fff)}`, () => {
      assert.equal(hasDefaultValidator({ runtimeName, runtimeVersion, nriVersion }), expected === 0x3fff);
    });
  }
});
