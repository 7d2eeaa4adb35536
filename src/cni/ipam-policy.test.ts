import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CniError, IpamRunner, MAX_IPAM_CONFIG_DEPTH, type IpamPolicy } from "./index.ts";

const POLICY: IpamPolicy = {
  allowedTypes: ["host-local", "whereabouts", "static"],
  // The AgentConfig defaults.
  allowedPathPrefixes: ["/var/lib/cni/networks/", "/etc/cni/net.d/whereabouts.d/", "/etc/kubernetes/cni/net.d/whereabouts.d/"],
  allowCrossNamespace: false,
};
const signal = new AbortController().signal;

/** Nothing here gets as far as running a plugin, except the release test, which brings its own directory. */
function runner(policy = POLICY, dir = "/nonexistent"): IpamRunner {
  return new IpamRunner({ pluginDirs: [dir], sandbox: { netns: join(dir, "netns"), workDir: dir }, policy, timeoutMs: 5_000 });
}

function nad(ipam: object, extra: object = {}): string {
  return JSON.stringify({ cniVersion: "1.0.0", name: "pool", type: "macvlan", master: "eth9", ...extra, ipam });
}

function refused(pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof CniError, `expected a CniError, got ${String(err)}`);
    assert.equal(err.code, "CNI_NOT_ALLOWED");
    assert.match(err.message, /^Cannot use NetworkAttachmentDefinition tenant\/pool for IPAM: /);
    assert.match(err.message, pattern);
    return true;
  };
}

describe("IpamRunner.fromNad plugin types", () => {
  for (const type of ["bridge", "tuning", "portmap", "firewall", "host-device", "no-such-plugin"]) {
    it(`refuses ${type}, naming the field and the key that would allow it`, () => {
      assert.throws(
        () => runner().fromNad(nad({ type }), "tenant/pool"),
        refused(new RegExp(`spec\\.config\\.ipam\\.type is "${type}", which is not an allowed IPAM plugin type; .*cni\\.ipam\\.allowedTypes .*allowed now: host-local, whereabouts, static`)),
      );
    });
  }

  it("says dhcp cannot work at all", () => {
    assert.throws(() => runner().fromNad(nad({ type: "dhcp" }), "tenant/pool"), refused(/"dhcp".*it cannot be allowed: .*before the pod's namespace exists/));
  });

  it("names the conflist entry that holds the ipam section", () => {
    const conflist = JSON.stringify({ cniVersion: "1.0.0", name: "pool", plugins: [{ type: "tuning" }, { type: "macvlan", ipam: { type: "bridge" } }] });
    assert.throws(() => runner().fromNad(conflist, "tenant/pool"), refused(/spec\.config\.plugins\[1\]\.ipam\.type is "bridge"/));
  });

  it("allows what the policy lists", () => {
    assert.equal(runner().fromNad(nad({ type: "static", addresses: [{ address: "198.51.100.7/24" }] }), "tenant/pool").plugin, "static");
    assert.equal(runner({ ...POLICY, allowedTypes: ["tuning"] }).fromNad(nad({ type: "tuning" }), "tenant/pool").plugin, "tuning");
  });
});

describe("IpamRunner.fromNad host paths", () => {
  const refusedPaths: [string, string, object, RegExp][] = [
    ["host-local dataDir outside the prefixes", "host-local", { dataDir: "/etc/cron.d" }, /spec\.config\.ipam\.dataDir is "\/etc\/cron\.d", a host path outside the allowed prefixes .*cni\.ipam\.allowedPathPrefixes/],
    ["host-local resolvConf (read back into the result)", "host-local", { resolvConf: "/root/.ssh/id_rsa" }, /spec\.config\.ipam\.resolvConf is/],
    ["whereabouts kubeconfig", "whereabouts", { kubernetes: { kubeconfig: "/root/.kube/config" } }, /spec\.config\.ipam\.kubernetes\.kubeconfig is "\/root\/\.kube\/config"/],
    ["whereabouts log_file in /tmp", "whereabouts", { log_file: "/tmp/whereabouts.log" }, /spec\.config\.ipam\.log_file is/],
    ["whereabouts configuration_path", "whereabouts", { configuration_path: "/etc/shadow" }, /spec\.config\.ipam\.configuration_path is/],
    ["a sibling that only shares the prefix's letters", "host-local", { dataDir: "/var/lib/cni/networks-other" }, /spec\.config\.ipam\.dataDir is/],
    ["OpenShift's plugin directory", "host-local", { dataDir: "/var/lib/cni/bin" }, /spec\.config\.ipam\.dataDir is "\/var\/lib\/cni\/bin"/],
    ["a whereabouts log appended to the runtime's CNI configuration", "whereabouts", { log_file: "/etc/cni/net.d/00-evil.conflist" }, /spec\.config\.ipam\.log_file is/],
    ["a climb out of an allowed prefix", "host-local", { dataDir: "/var/lib/cni/networks/../../../etc" }, /spec\.config\.ipam\.dataDir is ".*", which climbs out of its directory with "\.\."/],
    ["a relative climb", "host-local", { dataDir: "../../etc" }, /spec\.config\.ipam\.dataDir is "\.\.\/\.\.\/etc", which climbs/],
    ["doubled slashes", "host-local", { dataDir: "//etc//cron.d" }, /spec\.config\.ipam\.dataDir is "\/\/etc\/\/cron\.d"/],
    ["a path in an array", "host-local", { ranges: [[{ subnet: "198.51.100.0/24" }, { subnet: "/etc/passwd" }]] }, /spec\.config\.ipam\.ranges\[0\]\[1\]\.subnet is/],
    ["a path under an odd key", "whereabouts", { "odd.key": { "\u0000": "/etc" } }, /spec\.config\.ipam\["odd\.key"\]\["\\u0000"\] is "\/etc"/],
  ];
  for (const [name, type, fields, pattern] of refusedPaths) {
    it(`refuses ${name}`, () => {
      assert.throws(() => runner().fromNad(nad({ type, ...fields }), "tenant/pool"), refused(pattern));
    });
  }

  it("checks the main plugin's and the conflist's own fields too, since the plugin gets them", () => {
    assert.throws(() => runner().fromNad(nad({ type: "host-local" }, { kubeconfig: "/etc/kubernetes/admin.conf" }), "tenant/pool"), refused(/spec\.config\.kubeconfig is/));
    const conflist = JSON.stringify({ cniVersion: "1.0.0", name: "pool", logFile: "/etc/x", plugins: [{ type: "macvlan", ipam: { type: "host-local" } }] });
    assert.throws(() => runner().fromNad(conflist, "tenant/pool"), refused(/spec\.config\.logFile is/));
    const inPlugin = JSON.stringify({ cniVersion: "1.0.0", name: "pool", plugins: [{ type: "macvlan", ipam: { type: "host-local", dataDir: "/srv" } }] });
    assert.throws(() => runner().fromNad(inPlugin, "tenant/pool"), refused(/spec\.config\.plugins\[0\]\.ipam\.dataDir is "\/srv"/));
  });

  it("refuses nesting deeper than the cap, naming where", () => {
    let deep: unknown = "198.51.100.0/24";
    for (let i = 0; i < MAX_IPAM_CONFIG_DEPTH; i++) deep = [deep];
    assert.throws(() => runner().fromNad(nad({ type: "host-local", deep }), "tenant/pool"), refused(/spec\.config\.ipam\.deep(\[0\])+ nests deeper than 32 levels/));
  });

  it("accepts what real host-local and whereabouts NADs use, upstream and on OpenShift", () => {
    const accepted: object[] = [
      { type: "host-local", dataDir: "/var/lib/cni/networks", ranges: [[{ subnet: "198.51.100.0/24", gateway: "198.51.100.1" }], [{ subnet: "fd00::/64" }]], routes: [{ dst: "0.0.0.0/0" }] },
      { type: "host-local", dataDir: "/var/lib/cni/networks/", subnet: "198.51.100.0/24" },
      { type: "host-local", dataDir: "/var/lib/cni/networks", subnet: "198.51.100.0/24" },
      { type: "whereabouts", range: "198.51.100.0/24", exclude: ["198.51.100.0/28"], kubernetes: { kubeconfig: "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig" } },
      { type: "whereabouts", range: "fd00::/64", configuration_path: "/etc/kubernetes/cni/net.d/whereabouts.d/whereabouts.conf" },
      { type: "static", addresses: [{ address: "198.51.100.7/24", gateway: "198.51.100.1" }], dns: { nameservers: ["198.51.100.53"] } },
    ];
    for (const ipam of accepted) assert.doesNotThrow(() => runner().fromNad(nad(ipam), "tenant/pool"), JSON.stringify(ipam));
  });
});

describe("IpamRunner.release", () => {
  it("runs nothing for a journaled lease the policy no longer allows", async () => {
    const dir = await mkdtemp(join(tmpdir(), "netclaim-cni-"));
    const log = join(dir, "calls");
    for (const type of ["bridge", "host-local"]) {
      await writeFile(join(dir, type), `#!/bin/sh\necho "${type} $CNI_COMMAND" >> ${log}\n`);
      await chmod(join(dir, type), 0o755);
    }
    const ipam = runner({ ...POLICY, allowedPathPrefixes: [`${dir}/`] }, dir);
    const lease = { plugin: "bridge", config: { cniVersion: "1.0.0", name: "pool", ipam: { type: "bridge" } }, containerId: "claim-dev", ifName: "nc0" };
    await assert.rejects(ipam.release(lease, signal), (err: unknown) => {
      assert.ok(err instanceof CniError);
      assert.equal(err.code, "CNI_NOT_ALLOWED");
      assert.match(err.message, /journaled configuration of IPAM lease claim-dev .*ipam\.type is "bridge".*cni\.ipam\.allowedTypes/);
      return true;
    });
    const badPath = { plugin: "host-local", config: { cniVersion: "1.0.0", name: "pool", ipam: { type: "host-local", dataDir: "/etc" } }, containerId: "claim-dev", ifName: "nc0" };
    await assert.rejects(ipam.release(badPath, signal), /ipam\.dataDir is "\/etc"/);
    const fine = { ...badPath, config: { ...badPath.config, ipam: { type: "host-local", dataDir: dir } } };
    await ipam.release(fine, signal);
    assert.equal(await readFile(log, "utf8"), "host-local DEL\n");
  });
});
