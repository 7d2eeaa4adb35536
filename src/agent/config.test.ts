import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentConfigError, loadAgentConfig, parseAgentConfig } from "./config.ts";

async function writeTemp(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "netclaim-config-"));
  const file = join(dir, "agent.yaml");
  await writeFile(file, text);
  return file;
}

describe("loadAgentConfig", () => {
  it("fills every default from an empty input", async () => {
    const config = await loadAgentConfig();
    assert.equal(config.driverName, "netclaim.dev");
    assert.equal(config.kubelet.rootDir, "/var/lib/kubelet");
    assert.deepEqual(config.kubelet.draVersions, ["v1", "v1beta1"]);
    assert.equal(config.nri.socketPath, "/var/run/nri/nri.sock");
    assert.equal(config.nri.pluginIndex, "10");
    assert.equal(config.log.level, "info");
  });

  it("lets environment override the file and flags override both", async () => {
    const file = await writeTemp("nodeName: from-file\ndriverName: file.example.com\nlog:\n  level: warn\n");
    const config = await loadAgentConfig({
      file,
      env: { NODE_NAME: "from-env", NETCLAIM_LOG_LEVEL: "debug" },
      flags: { log: { level: "error" } },
    });
    assert.equal(config.nodeName, "from-env");
    assert.equal(config.driverName, "file.example.com");
    assert.equal(config.log.level, "error");
  });

  it("names every bad field with its path", async () => {
    const file = await writeTemp('driverName: Bad_Name\nnri:\n  pluginIndex: "7"\nkubelet:\n  draVersions: [v2]\n');
    await assert.rejects(loadAgentConfig({ file }), (err: unknown) => {
      assert.ok(err instanceof AgentConfigError);
      assert.equal(err.code, "CONFIG_INVALID");
      assert.match(err.message, new RegExp(file.replaceAll("/", "\\/")));
      assert.match(err.message, /^ {2}driverName: must be a lowercase DNS subdomain/m);
      assert.match(err.message, /^ {2}nri\.pluginIndex: must be exactly two digits/m);
      assert.match(err.message, /^ {2}kubelet\.draVersions\.0: /m);
      return true;
    });
  });

  it("rejects unknown fields instead of ignoring a typo", () => {
    assert.throws(() => parseAgentConfig({ nri: { socktPath: "/x" } }), /nri: Unrecognized key: "socktPath"/);
    assert.throws(() => parseAgentConfig({ stateDri: "/x" }), /Unrecognized key: "stateDri"/);
  });

  it("rejects a wrong apiVersion or kind", () => {
    assert.throws(() => parseAgentConfig({ apiVersion: "v1" }), /apiVersion/);
    assert.throws(() => parseAgentConfig({ kind: "NetworkConfig" }), /kind/);
  });

  it("reports unreadable and unparseable files with the file name", async () => {
    await assert.rejects(loadAgentConfig({ file: "/nonexistent/agent.yaml" }), (err: unknown) => {
      assert.ok(err instanceof AgentConfigError);
      assert.equal(err.code, "CONFIG_READ");
      assert.match(err.message, /\/nonexistent\/agent\.yaml/);
      return true;
    });
    const broken = await writeTemp("nri: [unclosed\n");
    await assert.rejects(loadAgentConfig({ file: broken }), { code: "CONFIG_PARSE" });
    const scalar = await writeTemp("just a string\n");
    await assert.rejects(loadAgentConfig({ file: scalar }), /must be a YAML mapping/);
  });

  it("refuses a repeated DRA version", () => {
    assert.throws(() => parseAgentConfig({ kubelet: { draVersions: ["v1", "v1"] } }), /must not repeat a version/);
  });
});

describe("AgentConfig cni.ipam", () => {
  it("allows only pool allocators and the usual CNI directories by default, in the claim's namespace, for 20 s", () => {
    const { ipam } = parseAgentConfig({}).cni;
    assert.deepEqual(ipam.allowedTypes, ["host-local", "whereabouts", "static"]);
    assert.deepEqual(ipam.allowedPathPrefixes, ["/var/lib/cni/networks/", "/etc/cni/net.d/whereabouts.d/", "/etc/kubernetes/cni/net.d/whereabouts.d/"]);
    assert.equal(ipam.allowCrossNamespace, false);
    assert.equal(ipam.timeoutSeconds, 20);
  });

  it("refuses dhcp, saying why it cannot work", () => {
    assert.throws(() => parseAgentConfig({ cni: { ipam: { allowedTypes: ["host-local", "dhcp"] } } }), /cni\.ipam\.allowedTypes\.1: cannot be allowed: the dhcp plugin's daemon .*before the pod's namespace exists/);
  });

  it("refuses a type that is a path and a prefix that climbs", () => {
    assert.throws(() => parseAgentConfig({ cni: { ipam: { allowedTypes: ["../bin/sh"] } } }), /cni\.ipam\.allowedTypes\.0: must be a plugin's bare file name/);
    assert.throws(() => parseAgentConfig({ cni: { ipam: { allowedPathPrefixes: ["/var/lib/cni/../.."] } } }), /cni\.ipam\.allowedPathPrefixes\.0: must not contain "\.\."/);
    assert.throws(() => parseAgentConfig({ cni: { ipam: { allowedPathPrefixes: ["var/lib"] } } }), /must be an absolute path/);
  });

  it("compares prefixes as directories, whichever way they are written", () => {
    const { ipam } = parseAgentConfig({ cni: { ipam: { allowedPathPrefixes: ["/srv/ipam", "//data//cni/", "/"] } } }).cni;
    assert.deepEqual(ipam.allowedPathPrefixes, ["/srv/ipam/", "/data/cni/", "/"]);
  });

  it("keeps the plugin time limit inside prepare's budget", () => {
    assert.throws(() => parseAgentConfig({ cni: { ipam: { timeoutSeconds: 60 } } }), /cni\.ipam\.timeoutSeconds: /);
    assert.throws(() => parseAgentConfig({ cni: { ipam: { timeoutSeconds: 0 } } }), /cni\.ipam\.timeoutSeconds: /);
  });
});

describe("AgentConfig http", () => {
  it("serves on port 9402 of every address by default", () => {
    const { http } = parseAgentConfig({});
    assert.equal(http.port, 9402);
    assert.equal(http.address, undefined);
  });

  it("takes the port as digits from the environment and flags, and 0 to turn the endpoints off", async () => {
    assert.equal((await loadAgentConfig({ env: { NETCLAIM_HTTP_PORT: "9500" } })).http.port, 9500);
    assert.equal((await loadAgentConfig({ env: { NETCLAIM_HTTP_PORT: "9500" }, flags: { http: { port: "0" } } })).http.port, 0);
  });

  it("refuses a port out of range or not a number, and an address that is not an IP", () => {
    assert.throws(() => parseAgentConfig({ http: { port: 70000 } }), /http\.port: /);
    assert.throws(() => parseAgentConfig({ http: { port: "ninety" } }), /http\.port: /);
    assert.throws(() => parseAgentConfig({ http: { address: "localhost" } }), /http\.address: must be an IPv4 or IPv6 address/);
    assert.equal(parseAgentConfig({ http: { address: "::1" } }).http.address, "::1");
  });

  it("leaves pods' network-status annotation alone unless opted in, from the file or the environment", async () => {
    assert.equal(parseAgentConfig({}).networkStatus.enabled, false);
    assert.equal(parseAgentConfig({ networkStatus: { enabled: true } }).networkStatus.enabled, true);
    assert.equal((await loadAgentConfig({ env: { NETCLAIM_NETWORK_STATUS: "true" } })).networkStatus.enabled, true);
    assert.throws(() => parseAgentConfig({ networkStatus: { enabled: "yes" } }), /networkStatus\.enabled: must be true or false/);
  });
});
