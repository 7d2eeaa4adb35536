import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GUARDED_KINDS } from "./guard.ts";
import { devicePolicySchema, evaluatePolicy, type PolicySubject } from "./policy.ts";

const vf: PolicySubject = {
  ifName: "ens1f0v1",
  deviceName: "pci-0000-3b-00-3",
  attributes: {
    local: { driver: "mlx5_core", isSriovVf: true, pciVendorID: "15b3", mtu: 1500 },
    standard: { pcieRoot: "pci0000:3a" },
  },
  guardedKinds: [],
};

const calico: PolicySubject = {
  ifName: "cali1234abcd",
  deviceName: "cali1234abcd",
  attributes: { local: { virtual: true }, standard: {} },
  guardedKinds: ["veth", "cni"],
};

const standIn: PolicySubject = { ...calico, ifName: "ncdemo0", deviceName: "ncdemo0", guardedKinds: ["veth"] };

const policy = (input: unknown) => devicePolicySchema.parse(input);

describe("device selection policy", () => {
  it("publishes every eligible device by default, and no device of a guarded kind", () => {
    assert.equal(evaluatePolicy(policy(undefined), vf).publish, true);
    assert.deepEqual(evaluatePolicy(policy(undefined), standIn), {
      publish: false,
      reason: "never published by default: veth (opt in with include[].kinds: [veth] or name it exactly)",
    });
  });

  it("publishes nothing with an empty include list (opt-in)", () => {
    assert.deepEqual(evaluatePolicy(policy({ include: [] }), vf), { publish: false, reason: "not selected (policy include is empty: opt-in)" });
  });

  it("selects by attributes, standard attributes and globs, and names the rule", () => {
    const rules = policy({
      include: [
        { ifName: "eno*" },
        { attributes: { driver: "mlx5_*", isSriovVf: true, pcieRoot: "pci0000:3a" }, multusResourceName: "example.com/mlx-vf" },
      ],
    });
    const verdict = evaluatePolicy(rules, vf);
    assert.equal(verdict.publish, true);
    assert.match(verdict.reason, /include\[1\]/);
    assert.equal("multusResourceName" in verdict ? verdict.multusResourceName : undefined, "example.com/mlx-vf");
    assert.equal(evaluatePolicy(rules, { ...vf, attributes: { ...vf.attributes, local: { ...vf.attributes.local, isSriovVf: false } } }).publish, false);
    assert.equal(evaluatePolicy(rules, { ...vf, attributes: { local: {}, standard: {} } }).publish, false);
  });

  it("lets exclusions win over inclusions", () => {
    assert.equal(evaluatePolicy(policy({ include: [{ ifName: "ens*" }], exclude: [{ deviceName: "pci-0000-3b-*" }] }), vf).publish, false);
  });

  it("rejects a selector that selects nothing and unknown fields", () => {
    assert.throws(() => policy({ include: [{}] }), /must set ifName, deviceName or attributes/);
    assert.throws(() => policy({ exclude: [{}] }), /must set ifName, deviceName or attributes/);
    assert.throws(() => policy({ exclude: [{ ifname: "x" }] }));
    assert.throws(() => policy({ includes: [] }));
  });
});

describe("device selection policy: the kind guard", () => {
  it("is not lifted by a glob, not even *", () => {
    for (const ifName of ["*", "cali*", "cali1234abc?", "cali1234abc[a-d]"]) {
      const verdict = evaluatePolicy(policy({ include: [{ ifName }] }), calico);
      assert.deepEqual(verdict, {
        publish: false,
        reason: "never published by default: veth, cni (opt in with include[].kinds: [veth, cni] or name it exactly)",
      }, ifName);
    }
    assert.equal(evaluatePolicy(policy({ include: [{ ifName: "*" }] }), vf).publish, true, "an unguarded device is selected as before");
  });

  it("is lifted by a rule whose kinds list every guarded kind of the device", () => {
    const verdict = evaluatePolicy(policy({ include: [{ ifName: "*", kinds: ["veth", "cni"] }] }), calico);
    assert.deepEqual(verdict, {
      publish: true,
      reason: 'selected by policy include[0] {"ifName":"*","kinds":["veth","cni"]}',
      multusResourceName: "netclaim.dev/netdev",
    });
    assert.equal(evaluatePolicy(policy({ include: [{ ifName: "*", kinds: ["veth"] }] }), calico).publish, false, "cni is not opted in");
    assert.equal(evaluatePolicy(policy({ include: [{ ifName: "*", kinds: ["veth"] }] }), standIn).publish, true);
    assert.equal(evaluatePolicy(policy({ include: [{ ifName: "*", kinds: ["bridge"] }] }), standIn).publish, false, "another kind is no opt-in");
  });

  it("does not select by kinds: the rule's selector still decides", () => {
    const rules = policy({ include: [{ ifName: "ncdemo*", kinds: ["veth"] }] });
    assert.equal(evaluatePolicy(rules, standIn).publish, true);
    assert.equal(evaluatePolicy(rules, { ...standIn, ifName: "other0", deviceName: "other0" }).publish, false);
    assert.equal(evaluatePolicy(policy({ include: [{ ifName: "ens*", kinds: ["veth"] }] }), vf).publish, true, "kinds widen, never narrow");
  });

  it("is lifted by a rule that names the device exactly, by ifName or deviceName", () => {
    assert.equal(evaluatePolicy(policy({ include: [{ ifName: "cali1234abcd" }] }), calico).publish, true);
    assert.equal(evaluatePolicy(policy({ include: [{ deviceName: "cali1234abcd" }] }), calico).publish, true);
    assert.equal(evaluatePolicy(policy({ include: [{ ifName: "cali1234abcd", deviceName: "cali*" }] }), calico).publish, true);
    assert.equal(evaluatePolicy(policy({ include: [{ attributes: { virtual: true } }] }), calico).publish, false, "attributes name nothing");
  });

  it("tries every rule: one that selects but does not opt in does not hide a later one that does", () => {
    const verdict = evaluatePolicy(policy({ include: [{ ifName: "*" }, { ifName: "ncdemo*", kinds: ["veth"] }] }), standIn);
    assert.equal(verdict.publish, true);
    assert.match(verdict.reason, /include\[1\]/);
  });

  it("holds with exclude set, and exclude still wins over an opt-in", () => {
    assert.equal(evaluatePolicy(policy({ exclude: [{ ifName: "unrelated0" }] }), standIn).publish, false);
    const verdict = evaluatePolicy(policy({ include: [{ ifName: "cali1234abcd" }], exclude: [{ ifName: "cali*" }] }), calico);
    assert.deepEqual(verdict, { publish: false, reason: 'excluded by policy exclude[0] {"ifName":"cali*"}' });
  });

  it("has no name-based default exclusions: exclude defaults to none", () => {
    assert.deepEqual(policy(undefined).exclude, []);
  });

  it("accepts every guarded kind, and rejects an unknown kind listing the valid ones", () => {
    assert.deepEqual(policy({ include: [{ ifName: "*", kinds: [...GUARDED_KINDS] }] }).include?.[0]?.kinds, [...GUARDED_KINDS]);
    const parsed = devicePolicySchema.safeParse({ include: [{ ifName: "*", kinds: ["veth", "vethh"] }] });
    assert.deepEqual(
      parsed.error?.issues.map((issue) => [issue.path.join("."), issue.message]),
      [["include.0.kinds.1", `unknown kind "vethh"; valid kinds: ${GUARDED_KINDS.join(", ")}`]],
    );
    assert.throws(() => policy({ include: [{ ifName: "*", kinds: [] }] }));
  });

  it("rejects a rule with kinds alone: kinds opt in, they select nothing", () => {
    assert.throws(() => policy({ include: [{ kinds: ["veth"] }] }), /kinds only opts in to kinds; it selects nothing/);
    assert.throws(() => policy({ exclude: [{ ifName: "x", kinds: ["veth"] }] }), /kinds/, "exclude selectors take no kinds");
  });
});
