import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { isIPv4 } from "node:net";
import { formatCidr, formatIp, networkOf, parseCidr, parseIp, prefixContains } from "./ip.ts";

describe("parseIp and formatIp", () => {
  const canonical: [string, string][] = [
    ["198.51.100.7", "198.51.100.7"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    ["10.0.100.9", "10.0.100.9"],
    ["fd00::1", "fd00::1"],
    ["FD00:0:0:0:0:0:0:1", "fd00::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:0db8::0001", "2001:db8::1"],
    ["::", "::"],
    ["::1", "::1"],
    ["fd00:1:2:3:4:5:6:7", "fd00:1:2:3:4:5:6:7"],
    ["fd00:0:1:2:3:4:5:0", "fd00:0:1:2:3:4:5:0"],
    ["::ffff:198.51.100.1", "::ffff:c633:6401"],
    ["64:ff9b::198.51.100.1", "64:ff9b::c633:6401"],
  ];
  for (const [input, expected] of canonical) {
    it(`formats ${input} as ${expected}`, () => {
      const parsed = parseIp(input);
      assert.ok(parsed, `${input} should parse`);
      assert.equal(formatIp(parsed), expected);
    });
  }

  const bad = [
    "", "198.51.100", "198.51.100.07", "256.0.0.1", "fd00::1%eth0", "fd00:::1", "x", "1.2.3.4/24",
    "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ", " 1.2.3.4", "00.1.2.3", "0.0.0.00", "1.2.3.1000",
    "1.2.3.2560", "+1.2.3.4", "1.2.3.0x1", "1.2.3.-4", "１.2.3.4",
  ];
  for (const text of bad) {
    it(`rejects "${text}"`, () => {
      assert.equal(parseIp(text), undefined);
    });
  }

  it("accepts exactly the dotted quads node:net accepts, less those with leading zeros", () => {
    const octets = ["0", "1", "9", "10", "99", "100", "199", "249", "255", "256", "300", "01", "001", "000", "1000", "", "a"];
    let seen = 0;
    for (const a of octets) {
      for (const b of ["0", "255", "256", "01", ""]) {
        for (const text of [`${a}.${b}.0.1`, `1.0.${b}.${a}`]) {
          const strict = isIPv4(text) && text.split(".").every((o) => o === "0" || !o.startsWith("0"));
          assert.equal(parseIp(text)?.family === 4, strict, text);
          seen++;
        }
      }
    }
    assert.equal(seen, octets.length * 5 * 2);
  });
});

describe("parseCidr", () => {
  it("keeps host bits and reports the network separately", () => {
    const prefix = parseCidr("198.51.100.7/24");
    assert.ok(prefix);
    assert.equal(formatCidr(prefix), "198.51.100.7/24");
    assert.equal(formatCidr(networkOf(prefix)), "198.51.100.0/24");
    const v6 = parseCidr("fd00:0:0:1::5/64");
    assert.ok(v6);
    assert.equal(formatCidr(v6), "fd00:0:0:1::5/64");
    assert.equal(formatCidr(networkOf(v6)), "fd00:0:0:1::/64");
  });

  for (const bad of ["198.51.100.7", "198.51.100.7/33", "fd00::/129", "198.51.100.7/024", "198.51.100.7/-1", "/24"]) {
    it(`rejects "${bad}"`, () => {
      assert.equal(parseCidr(bad), undefined);
    });
  }

  it("tests containment within one family only", () => {
    const prefix = parseCidr("198.51.100.0/25");
    assert.ok(prefix);
    assert.equal(prefixContains(prefix, parseIp("198.51.100.127")!), true);
    assert.equal(prefixContains(prefix, parseIp("198.51.100.128")!), false);
    assert.equal(prefixContains(prefix, parseIp("::1")!), false);
    assert.equal(prefixContains(parseCidr("0.0.0.0/0")!, parseIp("203.0.113.9")!), true);
  });
});
