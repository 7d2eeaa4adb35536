import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { baseRequestName, driverClaim, type ClaimContent } from "./claim.ts";

const ref = { namespace: "ns", uid: "u1", name: "c1" };

describe("driverClaim", () => {
  it("driverClaim keeps only this driver's results and the configs that apply to them", () => {
    const content: ClaimContent = {
      ref,
      allocation: {
        results: [
          { request: "nic/fast", driver: "netclaim.dev", pool: "p", device: "eth0" },
          { request: "gpu", driver: "gpu.example.com", pool: "p", device: "gpu0" },
        ],
        config: [
          { source: "FromClass", requests: [], driver: "netclaim.dev", parameters: { a: 1 } },
          { source: "FromClaim", requests: ["nic"], driver: "netclaim.dev", parameters: { b: 2 } },
          { source: "FromClaim", requests: ["nic/fast"], driver: "netclaim.dev", parameters: { c: 3 } },
          { source: "FromClaim", requests: ["gpu"], driver: "netclaim.dev", parameters: { d: 4 } },
          { source: "FromClaim", requests: [], driver: "gpu.example.com", parameters: { e: 5 } },
        ],
      },
    };
    const view = driverClaim(content, "netclaim.dev");
    assert.ok(view !== undefined);
    assert.deepEqual(view.results.map((r) => r.device), ["eth0"]);
    assert.deepEqual(view.config.map((c) => c.parameters), [{ a: 1 }, { b: 2 }, { c: 3 }]);
    assert.deepEqual(view.reservedFor, []);
  });

  it("driverClaim carries the pod's name for a claim made from its template, for device metadata", () => {
    const allocation = { results: [{ request: "nic", driver: "netclaim.dev", pool: "p", device: "eth0" }], config: [] };
    assert.equal(driverClaim({ ref, podClaimName: "nic", allocation }, "netclaim.dev")?.podClaimName, "nic");
    assert.equal(driverClaim({ ref, allocation }, "netclaim.dev")?.podClaimName, undefined);
  });

  it("driverClaim is undefined for a claim without allocation", () => {
    assert.equal(driverClaim({ ref }, "netclaim.dev"), undefined);
  });

  it("baseRequestName strips the subrequest", () => {
    assert.equal(baseRequestName("nic/fast"), "nic");
    assert.equal(baseRequestName("nic"), "nic");
  });
});
