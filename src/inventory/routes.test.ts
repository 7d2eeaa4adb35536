import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIpv4Defaults, parseIpv6Defaults } from "./routes.ts";

describe("default route parsing", () => {
  it("finds IPv4 default routes and ignores other prefixes and down routes", () => {
    const table = [
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
      "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0",
      "eth1\t0064A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
      "eth2\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0",
    ].join("\n");
    assert.deepEqual(parseIpv4Defaults(table), ["eth0"]);
  });

  it("finds IPv6 default routes and skips the kernel's unreachable ::/0 on lo", () => {
    const zero = "0".repeat(32);
    const table = [
      `${zero} 00 ${zero} 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0`,
      `fd000000000000000000000000000000 40 ${zero} 00 ${zero} 00000100 00000001 00000000 00000001     eth1`,
      `${zero} 00 ${zero} 00 ${zero} ffffffff 00000001 00000000 00200200       lo`,
      `${zero} 00 ${zero} 00 ${zero} ffffffff 00000001 00000000 00000201     eth3`,
    ].join("\n");
    assert.deepEqual(parseIpv6Defaults(table), ["eth0"]);
  });
});
