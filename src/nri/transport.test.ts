import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { transportFromEnv } from "./transport.ts";

describe("transportFromEnv", () => {
  it("connects externally when the runtime did not launch us", () => {
    assert.deepEqual(transportFromEnv({}, "/run/nri.sock"), { kind: "external", socketPath: "/run/nri.sock" });
  });

  it("takes fd, name and index from a runtime that launched us", () => {
    assert.deepEqual(transportFromEnv({ NRI_PLUGIN_SOCKET: "3", NRI_PLUGIN_NAME: "netclaim", NRI_PLUGIN_IDX: "05" }, "/x"), {
      kind: "pre-launched",
      fd: 3,
      pluginName: "netclaim",
      pluginIndex: "05",
    });
  });

  it("refuses a socket that is not an fd number, or a missing identity", () => {
    assert.throws(() => transportFromEnv({ NRI_PLUGIN_SOCKET: "/var/run/nri.sock", NRI_PLUGIN_NAME: "n", NRI_PLUGIN_IDX: "10" }, "/x"), TypeError);
    assert.throws(() => transportFromEnv({ NRI_PLUGIN_SOCKET: "3", NRI_PLUGIN_IDX: "1" }, "/x"), TypeError);
  });
});
