import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { INTERFACE_NAME, SYSCTL_VALUE } from "./linux-names.ts";

describe("linux names", () => {
  it("INTERFACE_NAME takes 1 to 15 portable characters", () => {
    for (const name of ["eth0", "net1", "eth0.100", "a", "A_b-c.d", "x".repeat(15)]) assert.ok(INTERFACE_NAME.test(name), name);
    for (const name of ["", "x".repeat(16), "a/b", "a:b", "a b", "eth0\n"]) assert.ok(!INTERFACE_NAME.test(name), JSON.stringify(name));
  });

  it("SYSCTL_VALUE takes 1 to 64 plain characters", () => {
    for (const value of ["1", "0", "stable-privacy", "fe80::1", "a b", "x".repeat(64)]) assert.ok(SYSCTL_VALUE.test(value), value);
    for (const value of ["", "x".repeat(65), "1\n", "a/b", "a;b"]) assert.ok(!SYSCTL_VALUE.test(value), JSON.stringify(value));
  });
});
