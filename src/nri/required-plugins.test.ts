import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { REQUIRED_PLUGINS_ANNOTATION, requiredPlugins } from "./required-plugins.ts";

const key = REQUIRED_PLUGINS_ANNOTATION;

describe("requiredPlugins", () => {
  it("reads JSON, YAML flow and YAML block lists", () => {
    for (const value of ['["sriov","netclaim"]', "[sriov, netclaim]", "- sriov\n- netclaim"]) {
      assert.deepEqual(requiredPlugins({ [`${key}/pod`]: value }), { kind: "listed", plugins: ["sriov", "netclaim"], key: `${key}/pod` }, value);
    }
  });

  it("takes the first present of the container's, the pod's and the bare key, as the validator does", () => {
    const annotations = { [key]: "[a]", [`${key}/pod`]: "[b]", [`${key}/container.app`]: "[c]" };
    assert.deepEqual(requiredPlugins(annotations, "app"), { kind: "listed", plugins: ["c"], key: `${key}/container.app` });
    assert.deepEqual(requiredPlugins(annotations, "sidecar"), { kind: "listed", plugins: ["b"], key: `${key}/pod` });
    assert.deepEqual(requiredPlugins(annotations), { kind: "listed", plugins: ["b"], key: `${key}/pod` });
    assert.deepEqual(requiredPlugins({ [key]: "[a]" }), { kind: "listed", plugins: ["a"], key });
  });

  it("tells an absent annotation, an empty list and an invalid one apart", () => {
    assert.deepEqual(requiredPlugins({ other: "x" }), { kind: "absent" });
    assert.deepEqual(requiredPlugins({ [`${key}/pod`]: "" }), { kind: "listed", plugins: [], key: `${key}/pod` });
    assert.equal(requiredPlugins({ [`${key}/pod`]: "netclaim" }).kind, "invalid");
    assert.equal(requiredPlugins({ [`${key}/pod`]: "[netclaim" }).kind, "invalid");
    assert.equal(requiredPlugins({ [`${key}/pod`]: "[1, 2]" }).kind, "invalid");
  });
});
