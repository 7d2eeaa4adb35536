import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { registrationService, supportedVersions, type RegistrationStatus } from "./registration.ts";

describe("registration", () => {
  it("supportedVersions lists DRAPlugin versions in the configured order, then health, v1 first", () => {
    assert.deepEqual(supportedVersions({ versions: ["v1", "v1beta1"], health: true }), ["v1.DRAPlugin", "v1beta1.DRAPlugin", "v1.DRAResourceHealth", "v1alpha1.DRAResourceHealth"]);
    assert.deepEqual(supportedVersions({ versions: ["v1beta1", "v1"], health: false }), ["v1beta1.DRAPlugin", "v1.DRAPlugin"]);
  });

  it("registrationService answers GetInfo and reports the kubelet's verdict", async () => {
    const seen: RegistrationStatus[] = [];
    const service = registrationService({ driver: "netclaim.dev", endpoint: "/k/plugins/netclaim.dev/dra.sock", versions: ["v1"], health: false }, (s) => seen.push(s));
    assert.deepEqual(await service.getInfo(), {
      type: "DRAPlugin",
      name: "netclaim.dev",
      endpoint: "/k/plugins/netclaim.dev/dra.sock",
      supportedVersions: ["v1.DRAPlugin"],
    });
    await service.notifyRegistrationStatus({ pluginRegistered: false, error: "no common version" });
    assert.deepEqual(seen, [{ registered: false, error: "no common version" }]);
  });
});
