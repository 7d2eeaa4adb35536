// Against the real host-local IPAM plugin from Debian's containernetworking-plugins.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allocateIpam, CniError, ipamConfigFromNad, releaseIpam } from "./index.ts";

const PLUGIN_DIRS = ["/opt/cni/bin", "/usr/lib/cni"];

async function hostLocalNad(range: object, asConflist = false): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), "netclaim-ipam-"));
  const plugin = { type: "macvlan", master: "eth9", ipam: { type: "host-local", dataDir, ranges: [[range]] } };
  return JSON.stringify(asConflist ? { cniVersion: "1.0.0", name: "pool", plugins: [plugin, { type: "tuning" }] } : { cniVersion: "1.0.0", name: "pool", ...plugin });
}

describe("allocateIpam with host-local", () => {
  it("allocates, refuses when the pool is empty, and gives a released address out again", async () => {
    // A /30 with its gateway reserved holds exactly one address.
    const nadConfig = await hostLocalNad({ subnet: "198.51.100.0/30", gateway: "198.51.100.1" });
    const options = { pluginDirs: PLUGIN_DIRS };
    const a = await allocateIpam({ nadConfig, nadRef: "default/pool", containerId: "claim-a", ifName: "nc0" }, options);
    assert.equal(a.plugin, "host-local");
    assert.deepEqual(a.result.ips, [{ address: "198.51.100.2/30", gateway: "198.51.100.1" }]);
    await assert.rejects(allocateIpam({ nadConfig, nadRef: "default/pool", containerId: "claim-b", ifName: "nc0" }, options), (err: unknown) => {
      assert.ok(err instanceof CniError);
      assert.equal(err.code, "CNI_PLUGIN_FAILED");
      assert.match(err.message, /host-local ADD \(container claim-b, interface nc0\) failed: .*no IP addresses available/);
      return true;
    });
    await releaseIpam(a, options);
    await releaseIpam(a, options); // DEL is idempotent
    const b = await allocateIpam({ nadConfig, nadRef: "default/pool", containerId: "claim-b", ifName: "nc0" }, options);
    assert.equal(b.result.ips[0]?.address, "198.51.100.2/30");
  });

  it("finds the ipam section inside a conflist and allocates IPv6", async () => {
    const nadConfig = await hostLocalNad({ subnet: "fd00:10::/120" }, true);
    const lease = await allocateIpam({ nadConfig, nadRef: "default/pool", containerId: "claim-v6", ifName: "nc0" }, { pluginDirs: PLUGIN_DIRS });
    assert.match(lease.result.ips.map((ip) => ip.address).join(), /^fd00:10::[0-9a-f]+\/120$/);
  });

});

describe("ipamConfigFromNad", () => {
  it("names the NAD and the field when the config cannot be used", () => {
    assert.throws(() => ipamConfigFromNad("{", "ns/nad"), /ns\/nad: spec\.config is not JSON/);
    assert.throws(() => ipamConfigFromNad('{"cniVersion":"1.0.0"}', "ns/nad"), /ns\/nad: spec\.config\.name/);
    assert.throws(() => ipamConfigFromNad('{"cniVersion":"1.0.0","name":"n","type":"macvlan"}', "ns/nad"), /no plugin with an "ipam" section/);
  });
});

describe("execCniPlugin errors", () => {
  it("says where it looked for a missing plugin", async () => {
    const nadConfig = JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "x", ipam: { type: "no-such-ipam" } });
    await assert.rejects(
      allocateIpam({ nadConfig, nadRef: "ns/n", containerId: "c", ifName: "nc0" }, { pluginDirs: ["/nonexistent"] }),
      /Cannot find CNI plugin "no-such-ipam" in \/nonexistent/,
    );
  });

  it("refuses a plugin type that is a path", async () => {
    const nadConfig = JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "x", ipam: { type: "../../bin/sh" } });
    await assert.rejects(allocateIpam({ nadConfig, nadRef: "ns/n", containerId: "c", ifName: "nc0" }, { pluginDirs: PLUGIN_DIRS }), { code: "CNI_CONFIG" });
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
    const nadConfig = JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "x", ipam: { type: "broken-ipam" } });
    await assert.rejects(
      allocateIpam({ nadConfig, nadRef: "ns/n", containerId: "c", ifName: "nc0" }, { pluginDirs: [dir] }),
      /returned an invalid result: ips\.0\.address: "198\.51\.100\.300\/24" is not an address/,
    );
    const { readFile } = await import("node:fs/promises");
    assert.deepEqual((await readFile(log, "utf8")).trim().split("\n"), ["ADD", "DEL"]);
  });
});
