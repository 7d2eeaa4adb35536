import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MAX_PARAMETERS_BYTES, parseNetworkConfig, type FieldProblem } from "./network-config.ts";
import { resolveRequestConfig, requestMatches, type OpaqueConfigEntry } from "./config-merge.ts";

const HEAD = { apiVersion: "netclaim.dev/v1alpha1", kind: "NetworkConfig" } as const;
const DRIVER = "netclaim.dev";

function problemsOf(parameters: unknown): FieldProblem[] {
  const result = parseNetworkConfig(parameters);
  if (result.ok) assert.fail("expected the document to be rejected");
  return result.problems;
}

function claimEntry(parameters: object, requests: string[] = []): OpaqueConfigEntry {
  return { source: "FromClaim", requests, driver: DRIVER, parameters: { ...HEAD, ...parameters } };
}
function classEntry(parameters: object, requests: string[] = []): OpaqueConfigEntry {
  return { source: "FromClass", requests, driver: DRIVER, parameters: { ...HEAD, ...parameters } };
}

describe("parseNetworkConfig", () => {
  it("accepts a full native document and normalises the MAC", () => {
    const result = parseNetworkConfig({
      ...HEAD,
      mode: "native",
      interface: {
        name: "data0",
        mtu: 9000,
        hardwareAddress: "02:AA:bb:00:00:01",
        addresses: ["198.51.100.10/24", "fd00::10/64"],
        sysctls: { "ipv4.arp_ignore": "1", "ipv6.accept_ra": "0" },
      },
      routes: [{ destination: "203.0.113.0/24", gateway: "198.51.100.1", table: 100, metric: 10 }],
    });
    assert.ok(result.ok);
    assert.equal(result.config.interface?.hardwareAddress, "02:aa:bb:00:00:01");
  });

  // Each validation rule, with the field path and the reason a user sees.
  const rejected: [string, unknown, string, RegExp][] = [
    ["wrong apiVersion", { ...HEAD, apiVersion: "v1" }, "apiVersion", /must be "netclaim.dev\/v1alpha1"/],
    ["wrong kind", { ...HEAD, kind: "AgentConfig" }, "kind", /must be "NetworkConfig"/],
    ["unknown top-level field", { ...HEAD, interfce: {} }, "", /Unrecognized key: "interfce"/],
    ["unknown interface field", { ...HEAD, interface: { nmae: "x" } }, "interface", /Unrecognized key: "nmae"/],
    ["bad mode", { ...HEAD, mode: "bridge" }, "mode", /native|multus/],
    ["name too long", { ...HEAD, interface: { name: "a23456789012345x" } }, "interface.name", /1 to 15 characters/],
    ["name with slash", { ...HEAD, interface: { name: "a/b" } }, "interface.name", /letters, digits/],
    ["name dot", { ...HEAD, interface: { name: ".." } }, "interface.name", /must not be/],
    ["mtu too small", { ...HEAD, interface: { mtu: 67 } }, "interface.mtu", /68|>=/],
    ["mtu not integer", { ...HEAD, interface: { mtu: 1500.5 } }, "interface.mtu", /int/],
    ["multicast MAC", { ...HEAD, interface: { hardwareAddress: "01:00:5e:00:00:01" } }, "interface.hardwareAddress", /unicast/],
    ["zero MAC", { ...HEAD, interface: { hardwareAddress: "00:00:00:00:00:00" } }, "interface.hardwareAddress", /all zeros/],
    ["malformed MAC", { ...HEAD, interface: { hardwareAddress: "02:00:00:00:00" } }, "interface.hardwareAddress", /six colon-separated/],
    ["address without prefix", { ...HEAD, interface: { addresses: ["198.51.100.10"] } }, "interface.addresses[0]", /prefix length/],
    ["repeated address", { ...HEAD, interface: { addresses: ["fd00::1/64", "fd00:0::1/64"] } }, "interface.addresses", /repeat/],
    ["too many addresses", { ...HEAD, interface: { addresses: Array.from({ length: 17 }, (_, i) => `198.51.100.${i + 1}/24`) } }, "interface.addresses", /16/],
    ["sysctl outside the interface", { ...HEAD, interface: { sysctls: { "net.ipv4.ip_forward": "1" } } }, "interface.sysctls.net.ipv4.ip_forward", /key must be "ipv4\.<name>"/],
    ["sysctl value with newline", { ...HEAD, interface: { sysctls: { "ipv4.arp_ignore": "1\n" } } }, "interface.sysctls.ipv4.arp_ignore", /plain characters/],
    ["route with host bits", { ...HEAD, routes: [{ destination: "203.0.113.5/24" }] }, "routes[0].destination", /did you mean 203\.0\.113\.0\/24/],
    ["route gateway not an IP", { ...HEAD, routes: [{ destination: "0.0.0.0/0", gateway: "gw" }] }, "routes[0].gateway", /not an IP/],
    ["route in local table", { ...HEAD, routes: [{ destination: "0.0.0.0/0", table: 255 }] }, "routes[0].table", /local table/],
    ["route unknown field", { ...HEAD, routes: [{ destination: "0.0.0.0/0", via: "x" }] }, "routes[0]", /Unrecognized key: "via"/],
    ["ipamFrom without name", { ...HEAD, ipamFrom: { namespace: "default" } }, "ipamFrom.name", /./],
    ["ipamFrom bad namespace", { ...HEAD, ipamFrom: { namespace: "Default", name: "nad" } }, "ipamFrom.namespace", /DNS label/],
  ];
  for (const [name, doc, field, reason] of rejected) {
    it(`rejects ${name} at ${field || "(top level)"}`, () => {
      const problems = problemsOf(doc);
      const match = problems.find((p) => p.field === field);
      assert.ok(match, `expected a problem at "${field}", got ${JSON.stringify(problems)}`);
      assert.match(match.message, reason);
    });
  }

  it("rejects parameters over the 10 KiB DRA limit before looking inside", () => {
    const problems = problemsOf({ ...HEAD, interface: { name: "x".repeat(MAX_PARAMETERS_BYTES) } });
    assert.equal(problems.length, 1);
    assert.match(problems[0]?.message ?? "", /at most 10240 are allowed/);
  });

  it("rejects a non-object", () => {
    assert.ok(problemsOf("interface: eth1").length > 0);
    assert.ok(problemsOf(null).length > 0);
  });

  it("rejects parameters nested thousands deep, naming where, without running out of stack", () => {
    let deep: unknown = "x";
    for (let i = 0; i < 10_000; i++) deep = [deep];
    const [problem] = problemsOf({ ...HEAD, routes: deep });
    assert.equal(problem?.field, `routes${"[0]".repeat(15)}`);
    assert.match(problem.message, /nests deeper than 16 levels/);
  });
});

describe("requestMatches", () => {
  it("applies an entry without requests to all, and a parent name to its subrequests", () => {
    assert.equal(requestMatches([], "nic"), true);
    assert.equal(requestMatches(["nic"], "nic"), true);
    assert.equal(requestMatches(["nic"], "nic/fast"), true);
    assert.equal(requestMatches(["nic/fast"], "nic/slow"), false);
    assert.equal(requestMatches(["other"], "nic"), false);
  });
});

describe("resolveRequestConfig", () => {
  it("lets the claim override the class field by field and merges sysctls by key", () => {
    const result = resolveRequestConfig(
      [
        claimEntry({ interface: { mtu: 9000, sysctls: { "ipv4.arp_ignore": "2" } } }),
        classEntry({ interface: { name: "data0", mtu: 1500, sysctls: { "ipv4.arp_ignore": "1", "ipv6.accept_ra": "0" } } }),
      ],
      { driverName: DRIVER, request: "nic" },
    );
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.config.interface.name, "data0");
    assert.equal(result.config.interface.mtu, 9000);
    assert.deepEqual(result.config.interface.sysctls, { "ipv4.arp_ignore": "2", "ipv6.accept_ra": "0" });
    assert.deepEqual(result.config.sources, ["DeviceClass config[0].opaque.parameters", "spec.devices.config[0].opaque.parameters"]);
    assert.equal(result.config.mode, "native");
  });

  it("ignores other drivers' entries and entries for other requests", () => {
    const result = resolveRequestConfig(
      [
        { source: "FromClaim", requests: [], driver: "gpu.example.com", parameters: { anything: true } },
        claimEntry({ interface: { name: "other0" } }, ["other"]),
        claimEntry({ interface: { name: "mine0" } }, ["nic"]),
      ],
      { driverName: DRIVER, request: "nic" },
    );
    assert.ok(result.ok);
    assert.equal(result.config.interface.name, "mine0");
  });

  it("lets claim static addresses replace class IPAM, and the reverse", () => {
    const staticWins = resolveRequestConfig(
      [classEntry({ ipamFrom: { name: "pool" } }), claimEntry({ interface: { addresses: ["198.51.100.7/24"] } })],
      { driverName: DRIVER, request: "nic" },
    );
    assert.ok(staticWins.ok);
    assert.equal(staticWins.config.ipamFrom, undefined);
    assert.deepEqual(staticWins.config.interface.addresses, ["198.51.100.7/24"]);

    const ipamWins = resolveRequestConfig(
      [classEntry({ interface: { addresses: ["198.51.100.7/24"] } }), claimEntry({ ipamFrom: { name: "pool" } })],
      { driverName: DRIVER, request: "nic" },
    );
    assert.ok(ipamWins.ok);
    assert.deepEqual(ipamWins.config.ipamFrom, { name: "pool" });
    assert.deepEqual(ipamWins.config.interface.addresses, []);
  });

  it("refuses static addresses and IPAM in one document", () => {
    const result = resolveRequestConfig([claimEntry({ interface: { addresses: ["198.51.100.7/24"] }, ipamFrom: { name: "pool" } })], {
      driverName: DRIVER,
      request: "nic",
    });
    assert.equal(result.ok, false);
    assert.match(JSON.stringify(result), /spec\.devices\.config\[0\]\.opaque\.parameters\.ipamFrom.*choose static addresses or IPAM/);
  });

  it("prefixes per-document problems with the entry they came from", () => {
    const result = resolveRequestConfig([classEntry({}), claimEntry({ interface: { mtu: 1 } })], { driverName: DRIVER, request: "nic" });
    if (result.ok) assert.fail("expected a rejection");
    assert.ok(result.problems.some((p) => p.field === "spec.devices.config[0].opaque.parameters.interface.mtu"));
  });

  const crossRejected: [string, OpaqueConfigEntry[], RegExp][] = [
    [
      "interface settings in multus mode",
      [classEntry({ interface: { mtu: 9000 } }), claimEntry({ mode: "multus" })],
      /DeviceClass config\[0\]\.opaque\.parameters\.interface\.mtu.*cannot be set in mode "multus"/,
    ],
    [
      "an unreachable gateway",
      [claimEntry({ interface: { addresses: ["198.51.100.7/24"] }, routes: [{ destination: "0.0.0.0/0", gateway: "203.0.113.1" }] })],
      /routes\[0\]\.gateway: .*unreachable/,
    ],
    [
      "a gateway of the other family",
      [claimEntry({ interface: { addresses: ["fd00::7/64"] }, routes: [{ destination: "::/0", gateway: "198.51.100.1" }] })],
      /routes\[0\]\.gateway.*same IP family/,
    ],
    [
      "a source that is not ours",
      [claimEntry({ interface: { addresses: ["198.51.100.7/24"] }, routes: [{ destination: "203.0.113.0/24", source: "198.51.100.8" }] })],
      /routes\[0\]\.source.*not one of the interface's addresses/,
    ],
    [
      "a gateway route with link scope",
      [claimEntry({ interface: { addresses: ["198.51.100.7/24"] }, routes: [{ destination: "0.0.0.0/0", gateway: "198.51.100.1", scope: "link" }] })],
      /routes\[0\]\.scope.*universe/,
    ],
    [
      "an IPv6 address with a small MTU",
      [claimEntry({ interface: { mtu: 1000, addresses: ["fd00::7/64"] } })],
      /interface\.mtu.*IPv6 needs at least 1280/,
    ],
  ];
  for (const [name, entries, reason] of crossRejected) {
    it(`rejects ${name}`, () => {
      const result = resolveRequestConfig(entries, { driverName: DRIVER, request: "nic" });
      if (result.ok) assert.fail("expected a rejection");
      assert.match(result.problems.map((p) => `${p.field}: ${p.message}`).join("\n"), reason);
    });
  }

  it("accepts a gateway reached through a link-scope route", () => {
    const result = resolveRequestConfig(
      [
        claimEntry({
          interface: { addresses: ["198.51.100.7/32"] },
          routes: [
            { destination: "198.51.100.1/32", scope: "link" },
            { destination: "0.0.0.0/0", gateway: "198.51.100.1", table: 100 },
          ],
        }),
      ],
      { driverName: DRIVER, request: "nic" },
    );
    assert.ok(result.ok, JSON.stringify(result));
  });

  it("defers gateway and source checks to prepare time when addresses come from IPAM", () => {
    const result = resolveRequestConfig(
      [claimEntry({ ipamFrom: { name: "pool" }, routes: [{ destination: "0.0.0.0/0", gateway: "203.0.113.1" }] })],
      { driverName: DRIVER, request: "nic" },
    );
    assert.ok(result.ok);
  });

  it("layers a child field by field: the class's kind, the claim's mode; a mode of the other kind names where it was set", () => {
    const layered = resolveRequestConfig([classEntry({ child: { kind: "ipvlan" } }), claimEntry({ child: { mode: "l3s" } })], { driverName: DRIVER, request: "nic" });
    assert.ok(layered.ok, JSON.stringify(layered));
    assert.deepEqual(layered.config.child, { kind: "ipvlan", mode: "l3s" });
    const mixed = resolveRequestConfig([classEntry({ child: { kind: "ipvlan" } }), claimEntry({ child: { mode: "bridge" } })], { driverName: DRIVER, request: "nic" });
    assert.deepEqual(mixed, {
      ok: false,
      problems: [{ field: "spec.devices.config[0].opaque.parameters.child.mode", message: 'is "bridge", which is not a mode of ipvlan; use one of l2, l3, l3s' }],
    });
  });

  it("refuses a child in mode multus, and an unknown child field", () => {
    const multus = resolveRequestConfig([claimEntry({ mode: "multus", child: { kind: "macvlan" } })], { driverName: DRIVER, request: "nic" });
    assert.equal(multus.ok, false);
    assert.match(JSON.stringify(multus), /child\.kind.*cannot be set in mode \\"multus\\"/);
    const unknown = resolveRequestConfig([claimEntry({ child: { kind: "macvlan", vlan: 7 } })], { driverName: DRIVER, request: "nic" });
    assert.equal(unknown.ok, false);
    assert.match(JSON.stringify(unknown), /child/);
  });
});
