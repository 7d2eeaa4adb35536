import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { devicePolicySchema, evaluatePolicy, globMatches, type PolicySubject } from "./policy.ts";

const vf: PolicySubject = {
  ifName: "ens1f0v1",
  deviceName: "pci-0000-3b-00-3",
  attributes: {
    local: { driver: "mlx5_core", isSriovVf: true, pciVendorID: "15b3", mtu: 1500 },
    standard: { pcieRoot: "pci0000:3a" },
  },
};

describe("device selection policy", () => {
  it("publishes every eligible device by default, except runtime and CNI interfaces", () => {
    const policy = devicePolicySchema.parse(undefined);
    assert.equal(evaluatePolicy(policy, vf).publish, true);
    const veth = evaluatePolicy(policy, { ...vf, ifName: "veth12ab", deviceName: "veth12ab" });
    assert.equal(veth.publish, false);
    assert.match(veth.reason, /exclude\[0\]/);
  });

  it("publishes nothing with an empty include list (opt-in)", () => {
    const verdict = evaluatePolicy(devicePolicySchema.parse({ include: [] }), vf);
    assert.deepEqual(verdict, { publish: false, reason: "not selected (policy include is empty: opt-in)" });
  });

  it("selects by attributes, standard attributes and globs, and names the rule", () => {
    const policy = devicePolicySchema.parse({
      include: [
        { ifName: "eno*" },
        { attributes: { driver: "mlx5_*", isSriovVf: true, pcieRoot: "pci0000:3a" }, multusResourceName: "example.com/mlx-vf" },
      ],
    });
    const verdict = evaluatePolicy(policy, vf);
    assert.equal(verdict.publish, true);
    assert.match(verdict.reason, /include\[1\]/);
    assert.equal("multusResourceName" in verdict ? verdict.multusResourceName : undefined, "example.com/mlx-vf");
    assert.equal(evaluatePolicy(policy, { ...vf, attributes: { ...vf.attributes, local: { ...vf.attributes.local, isSriovVf: false } } }).publish, false);
    assert.equal(evaluatePolicy(policy, { ...vf, attributes: { local: {}, standard: {} } }).publish, false);
  });

  it("lets exclusions win over inclusions", () => {
    const policy = devicePolicySchema.parse({ include: [{ ifName: "ens*" }], exclude: [{ deviceName: "pci-0000-3b-*" }] });
    assert.equal(evaluatePolicy(policy, vf).publish, false);
  });

  it("rejects a selector that selects nothing and unknown fields", () => {
    assert.throws(() => devicePolicySchema.parse({ include: [{}] }), /must set ifName, deviceName or attributes/);
    assert.throws(() => devicePolicySchema.parse({ exclude: [{ ifname: "x" }] }));
    assert.throws(() => devicePolicySchema.parse({ includes: [] }));
  });

  it("treats glob metacharacters other than * and ? literally", () => {
    assert.equal(globMatches("flannel.*", "flannel.1"), true);
    assert.equal(globMatches("flannel.*", "flannelx1"), false);
    assert.equal(globMatches("eth?", "eth1"), true);
    assert.equal(globMatches("eth?", "eth10"), false);
  });
});

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
    ["a.b", "axb", false],
    ["net[", "net[", true],
  ];
  for (const [pattern, text, matches] of cases) {
    it(`"${pattern}" ${matches ? "matches" : "does not match"} "${text}"`, () => {
      assert.equal(globMatches(pattern, text), matches);
    });
  }
});
