import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Backoff } from "./backoff.ts";

describe("Backoff", () => {
  it("doubles up to the cap, jittered between half and all of each step", () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    const lows = Array.from({ length: 6 }, () => low.next());
    const highs = Array.from({ length: 6 }, () => Math.round(high.next()));
    assert.deepEqual(lows, [50, 100, 200, 400, 500, 500]);
    assert.deepEqual(highs, [100, 200, 400, 800, 1000, 1000]);
  });

  it("starts over after reset", () => {
    const b = new Backoff({ initialMs: 10, maxMs: 1000, random: () => 0 });
    b.next();
    b.next();
    b.reset();
    assert.equal(b.next(), 5);
  });

  it("rejects nonsensical options", () => {
    assert.throws(() => new Backoff({ initialMs: 0, maxMs: 10 }), RangeError);
    assert.throws(() => new Backoff({ initialMs: 20, maxMs: 10 }), RangeError);
  });
});
