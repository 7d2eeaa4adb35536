/**
 * Issue 16, done-when 8: `netclaim devices` (the real CLI) on a "node" with a
 * bridge, a bridge port, veth pairs, a vxlan, veths named like Calico's and
 * Cilium's host interfaces, a macvlan and an uplink. Each run builds the node
 * in a fresh network namespace with its own /sys (so /sys/class/net lists
 * that namespace's links), then runs the CLI there: kinds come from netlink
 * as on a real node, and the host is never touched.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;

const NODE_SETUP = `
mount -t sysfs sysfs /sys
ip link set lo up
ip link add uplink0 type veth peer name uplink0p
ip addr add 198.51.100.1/24 dev uplink0
ip link set uplink0 up
ip link set uplink0p up
ip route add default via 198.51.100.254 dev uplink0
ip link add br0 type bridge
ip link add port0 type veth peer name port0p
ip link set port0 master br0
ip link add va type veth peer name vb
ip link add vx0 type vxlan id 42 dstport 4789 local 198.51.100.1
ip link add cali1234abcd type veth peer name lxc1234abcd
ip link add mv0 link uplink0p type macvlan mode bridge
`;

interface Report {
  ifName: string;
  kind?: string;
  publish: boolean;
  reason: string;
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "nc-devices-guard-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `netclaim devices --json` with this device policy, on a fresh node built by NODE_SETUP. */
async function devicesOnFreshNode(devices: unknown): Promise<Map<string, Report>> {
  const config = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(config, JSON.stringify({ apiVersion: "netclaim.dev/v1alpha1", kind: "AgentConfig", devices }));
  const script = `set -e\n${NODE_SETUP}\nexec "$0" "$1" devices --json --config "$2"`;
  const { stdout } = await run("unshare", ["--net", "--mount", "--", "sh", "-c", script, process.execPath, MAIN, config], {
    env: { PATH: process.env["PATH"] ?? "" },
  });
  const reports = JSON.parse(stdout) as Report[];
  return new Map(reports.map((r) => [r.ifName, r]));
}

const guardReason = (kinds: string): string => `never published by default: ${kinds} (opt in with include[].kinds: [${kinds}] or name it exactly)`;

/** Every device of the node but loopback and the uplink, with the guard's finding ("" for none). */
const GUARDS: Readonly<Record<string, string>> = {
  br0: "bridge",
  port0: "veth, bridge-port",
  port0p: "veth",
  va: "veth",
  vb: "veth",
  uplink0p: "veth",
  vx0: "vxlan",
  cali1234abcd: "veth, cni",
  lxc1234abcd: "veth, cni",
  mv0: "",
};

const publishedNames = (reports: Map<string, Report>): string[] => [...reports.values()].filter((r) => r.publish).map((r) => r.ifName).sort();

describe("netclaim devices on the real kernel: the kind guard", () => {
  it("shows bridges, veths, a vxlan and CNI host interfaces as never published by default, even for include ifName *", async () => {
    for (const policy of [{ include: [{ ifName: "*" }] }, {}, { exclude: [{ ifName: "nothing0" }] }]) {
      const reports = await devicesOnFreshNode(policy);
      const what = JSON.stringify(policy);
      assert.deepEqual(publishedNames(reports), ["mv0"], what);
      for (const [ifName, kinds] of Object.entries(GUARDS)) {
        if (kinds !== "") assert.equal(reports.get(ifName)?.reason, guardReason(kinds), `${ifName} under ${what}`);
      }
      assert.equal(reports.get("uplink0")?.reason, "never published: carries a default route (node uplink)");
    }
  });

  it("reads the kinds from the kernel over netlink, veths included (sysfs cannot show them)", async () => {
    const reports = await devicesOnFreshNode({ include: [] });
    const kinds = Object.fromEntries(["br0", "va", "vx0", "cali1234abcd", "mv0"].map((name) => [name, reports.get(name)?.kind]));
    assert.deepEqual(kinds, { br0: "bridge", va: "veth", vx0: "vxlan", cali1234abcd: "veth", mv0: "macvlan" });
  });

  it("publishes a guarded device that a rule names exactly, but never the uplink", async () => {
    const reports = await devicesOnFreshNode({
      include: [{ ifName: "br0" }, { ifName: "cali1234abcd" }, { deviceName: "vx0" }, { ifName: "uplink0", kinds: ["veth"] }],
    });
    assert.deepEqual(publishedNames(reports), ["br0", "cali1234abcd", "vx0"]);
    assert.equal(reports.get("uplink0")?.publish, false);
  });

  it("publishes the devices whose guarded kinds a rule opts into, and only those", async () => {
    const reports = await devicesOnFreshNode({ include: [{ ifName: "*", kinds: ["veth", "bridge", "vxlan"] }, { ifName: "lxc*", kinds: ["veth", "cni"] }] });
    assert.deepEqual(publishedNames(reports), ["br0", "lxc1234abcd", "mv0", "port0p", "uplink0p", "va", "vb", "vx0"]);
    assert.equal(reports.get("cali1234abcd")?.reason, guardReason("veth, cni"), "cni is not opted in for cali*");
    assert.equal(reports.get("port0")?.reason, guardReason("veth, bridge-port"), "a bridge port needs bridge-port");
  });
});
