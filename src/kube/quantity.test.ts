import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatDecimalQuantity, parseQuantity, quantityKey, wholeQuantity } from "./quantity.ts";

describe("quantities", () => {
  it("reads decimal, binary and exponent suffixes exactly", () => {
    assert.equal(wholeQuantity("10G"), 10_000_000_000n);
    assert.equal(wholeQuantity("10000M"), 10_000_000_000n);
    assert.equal(wholeQuantity("1e10"), 10_000_000_000n);
    assert.equal(wholeQuantity("1.5G"), 1_500_000_000n);
    assert.equal(wholeQuantity("25Gi"), 25n * 2n ** 30n);
    assert.equal(wholeQuantity("1k"), 1000n);
    assert.equal(wholeQuantity("8"), 8n);
    assert.equal(wholeQuantity("0"), 0n);
    assert.equal(wholeQuantity("-2k"), -2000n);
  });

  it("tells fractions and text that is no quantity apart", () => {
    assert.equal(wholeQuantity("1500m"), undefined, "1.5 is not whole");
    assert.deepEqual(parseQuantity("1500m"), { coefficient: 15n, exponent: -1 });
    assert.deepEqual(parseQuantity(".5"), { coefficient: 5n, exponent: -1 });
    for (const text of ["", "G", "10 G", "10g", "10K", "10GB", "1e", "ten", "10Gi5", "1.2.3"]) assert.equal(parseQuantity(text), undefined, text);
  });

  it("keys equal values alike whatever the spelling, as the API server's canonical form differs from what was written", () => {
    assert.equal(quantityKey("10000M"), quantityKey("10G"));
    assert.equal(quantityKey("1e10"), quantityKey("10G"));
    assert.equal(quantityKey("1024Mi"), quantityKey("1Gi"));
    assert.equal(quantityKey("1.5G"), quantityKey("1500M"));
    assert.notEqual(quantityKey("1G"), quantityKey("1Gi"));
    assert.notEqual(quantityKey("10G"), quantityKey("10"));
    assert.notEqual(quantityKey("bogus"), quantityKey("0"));
  });

  it("writes whole numbers as the API server does, with the largest exact decimal suffix", () => {
    assert.equal(formatDecimalQuantity(10_000_000_000n), "10G");
    assert.equal(formatDecimalQuantity(1_500_000_000n), "1500M");
    assert.equal(formatDecimalQuantity(1_250_000_000n), "1250M");
    assert.equal(formatDecimalQuantity(100_000_000_000n), "100G");
    assert.equal(formatDecimalQuantity(1n), "1");
    assert.equal(formatDecimalQuantity(0n), "0");
    assert.equal(formatDecimalQuantity(10n ** 21n), "1000E");
  });
});
