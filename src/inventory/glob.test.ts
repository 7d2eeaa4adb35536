import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { globMatches, isExactName } from "./glob.ts";

describe("globMatches", () => {
  const cases: [pattern: string, text: string, matches: boolean][] = [
    ["ens*", "ens3f0", true],
    ["ens*", "eth0", false],
    ["eth?", "eth1", true],
    ["eth?", "eth10", false],
    ["ncdemo[0-9]", "ncdemo0", true],
    ["ncdemo[0-9]", "ncdemom", false],
    ["ens3f[!0]", "ens3f1", true],
    ["ens3f[!0]", "ens3f0", false],
    ["pci-0000-3b-*", "pci-0000-3b-00-1", true],
    ["flannel.*", "flannel.1", true],
    ["flannel.*", "flannelx1", false],
    ["a.b", "axb", false],
    ["net[", "net[", true],
  ];
  for (const [pattern, text, matches] of cases) {
    it(`"${pattern}" ${matches ? "matches" : "does not match"} "${text}"`, () => {
      assert.equal(globMatches(pattern, text), matches);
    });
  }
});

describe("isExactName", () => {
  it("is true only for patterns without *, ? or [", () => {
    assert.equal(isExactName("cali1234abcd"), true);
    assert.equal(isExactName("flannel.1"), true);
    assert.equal(isExactName("pci-0000-3b-00-0"), true);
    assert.equal(isExactName("*"), false);
    assert.equal(isExactName("cali*"), false);
    assert.equal(isExactName("eth?"), false);
    assert.equal(isExactName("ncdemo[0-9]"), false);
  });
});
