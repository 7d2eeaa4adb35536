// Against the real host-local IPAM plugin from Debian's containernetworking-plugins.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CniError, IpamRunner, type IpamPolicy } from "./index.ts";

const PLUGIN_DIRS = ["/opt/cni/bin", "/usr/lib/cni"];
const signal = new AbortController().signal;

/** host-local keeps its pools under a temporary dataDir, so the tests allow the temporary directory. */
const POLICY: IpamPolicy = { allowedTypes: ["host-local", "broken-ipam"], allowedPathPrefixes: [`${tmpdir()}/`], allowCrossNamespace: false };

async function runner(pluginDirs: readonly string[] = PLUGIN_DIRS, policy = POLICY): Promise<IpamRunner> {
  const dir = await mkdtemp(join(tmpdir(), "netclaim-sandbox-"));
  // host-local never enters CNI_NETNS, so these unit tests need no real namespace.
  return new IpamRunner({ pluginDirs, sandbox: { netns: join(dir, "netns"), workDir: dir }, policy, timeoutMs: 10_000 });
}

async function hostLocalNad(range: object, asConflist = false): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), "netclaim-ipam-"));
  const plugin = { type: "macvlan", master: "eth9", ipam: { type: "host-local", dataDir, ranges: [[range]] } };
  return JSON.stringify(asConflist ? { cniVersion: "1.0.0", name: "pool", plugins: [plugin, { type: "tuning" }] } : { cniVersion: "1.0.0", name: "pool", ...plugin });
}

describe("IpamRunner with host-local", () => {
  it("allocates, refuses when the pool is empty, and gives a released address out again", async () => {
    // A /30 with its gateway reserved holds exactly one address.
    const ipam = await runner();
    const config = ipam.fromNad(await hostLocalNad({ subnet: "198.51.100.0/30", gateway: "198.51.100.1" }), "default/pool");
    const a = await ipam.allocate(config, { nadRef: "default/pool", containerId: "claim-a", ifName: "nc0" }, signal);
    assert.equal(a.plugin, "host-local");
    assert.deepEqual(a.result.ips, [{ address: "198.51.100.2/30", gateway: "198.51.100.1" }]);
    await assert.rejects(ipam.allocate(config, { nadRef: "default/pool", containerId: "claim-b", ifName: "nc0" }, signal), (err: unknown) => {
      assert.ok(err instanceof CniError);
      assert.equal(err.code, "CNI_PLUGIN_FAILED");
      assert.match(err.message, /host-local ADD \(container claim-b, interface nc0\) failed: .*no IP addresses available/);
      return true;
    });
    await ipam.release(a, signal);
    await ipam.release(a, signal); // DEL is idempotent
    const b = await ipam.allocate(config, { nadRef: "default/pool", containerId: "claim-b", ifName: "nc0" }, signal);
    assert.equal(b.result.ips[0]?.address, "198.51.100.2/30");
  });

  it("finds the ipam section inside a conflist and allocates IPv6", async () => {
    const ipam = await runner();
    const config = ipam.fromNad(await hostLocalNad({ subnet: "fd00:10::/120" }, true), "default/pool");
    const lease = await ipam.allocate(config, { nadRef: "default/pool", containerId: "claim-v6", ifName: "nc0" }, signal);
    assert.match(lease.result.ips.map((ip) => ip.address).join(), /^fd00:10::[0-9a-f]+\/120$/);
  });
});

describe("IpamRunner.fromNad", () => {
  it("names the NAD and the field when the config cannot be used", async () => {
    const ipam = await runner();
    assert.throws(() => ipam.fromNad("{", "ns/nad"), /ns\/nad: spec\.config is not JSON/);
    assert.throws(() => ipam.fromNad('{"cniVersion":"1.0.0"}', "ns/nad"), /ns\/nad: spec\.config\.name: /);
    assert.throws(() => ipam.fromNad("null", "ns/nad"), /ns\/nad: spec\.config: /);
    assert.throws(() => ipam.fromNad('{"cniVersion":"1.0.0","name":"n","type":"macvlan"}', "ns/nad"), /no plugin with an "ipam" section/);
  });

  it("hands the plugin the network's config with the IPAM plugin's own entry, without the conflist", async () => {
    const ipam = await runner();
    const nad = { cniVersion: "1.0.0", name: "pool", plugins: [{ type: "macvlan", master: "eth9", ipam: { type: "host-local", subnet: "198.51.100.0/24" } }, { type: "tuning" }] };
    assert.deepEqual(ipam.fromNad(JSON.stringify(nad), "ns/pool"), {
      plugin: "host-local",
      config: { cniVersion: "1.0.0", name: "pool", type: "macvlan", master: "eth9", ipam: { type: "host-local", subnet: "198.51.100.0/24" } },
    });
  });
});

describe("execCniPlugin errors", () => {
  it("says where it looked for a missing plugin", async () => {
    const ipam = await runner(["/nonexistent"], { ...POLICY, allowedTypes: ["no-such-ipam"] });
    const config = ipam.fromNad(JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "x", ipam: { type: "no-such-ipam" } }), "ns/n");
    await assert.rejects(ipam.allocate(config, { nadRef: "ns/n", containerId: "c", ifName: "nc0" }, signal), /Cannot find CNI plugin "no-such-ipam" in \/nonexistent/);
  });

  it("refuses a plugin type that is a path, even when a policy lists it", async () => {
    const ipam = await runner(["/usr"], { ...POLICY, allowedTypes: ["bin/sh"] });
    const config = ipam.fromNad(JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "x", ipam: { type: "bin/sh" } }), "ns/n");
    await assert.rejects(ipam.allocate(config, { nadRef: "ns/n", containerId: "c", ifName: "nc0" }, signal), { code: "CNI_CONFIG" });
  });

  it("rejects a result with a malformed address and releases the lease", async () => {
    const dir = await mkdtemp(join(tmpdir(), "netclaim-cni-"));
    const log = join(dir, "calls");
    // A deliberately broken plugin: our own fake, only to reach the result validation.
    await writeFile(
      join(dir, "broken-ipam"),
      `#!/bin/sh\necho "$CNI_COMMAND" >> ${log}\n[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","ips":[{"address":"198.51.100.300/24"}]}'\nexit 0\n`,
    );
    await chmod(join(dir, "broken-ipam"), 0o755);
    const ipam = await runner([dir]);
    const config = ipam.fromNad(JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "x", ipam: { type: "broken-ipam" } }), "ns/n");
    await assert.rejects(
      ipam.allocate(config, { nadRef: "ns/n", containerId: "c", ifName: "nc0" }, signal),
      /returned an invalid result: ips\.0\.address: "198\.51\.100\.300\/24" is not an address/,
    );
    assert.deepEqual((await readFile(log, "utf8")).trim().split("\n"), ["ADD", "DEL"]);
  });
});
