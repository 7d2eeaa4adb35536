// The CLI as a user meets it: a real child process running the pinned Node.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { AGENT_FLAGS } from "../../src/cli/flags.ts";
import { cniNode, connectxNode } from "../fixtures/nodes.ts";
import { writeSysfsFixture } from "../fixtures/sysfs-tree.ts";

const run = promisify(execFile);
const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;

async function netclaim(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], { env: { PATH: process.env["PATH"] ?? "" } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("netclaim CLI", () => {
  it("prints the package version and the Node 24 runtime", async () => {
    const { code, stdout } = await netclaim("version", "--json");
    assert.equal(code, 0);
    const parsed = JSON.parse(stdout) as { version: string; node: string };
    assert.match(parsed.version, /^\d+\.\d+\.\d+/);
    assert.match(parsed.node, /^v24\./);
  });

  it("agent --help explains every flag", async () => {
    const { code, stdout } = await netclaim("agent", "--help");
    assert.equal(code, 0);
    for (const flag of AGENT_FLAGS) {
      assert.match(stdout, new RegExp(`--${flag.name}\\b.*${flag.help.slice(0, 20).replace(/[()]/g, ".")}`));
    }
    assert.match(stdout, /NODE_NAME/);
  });

  it("agent --config bad.yaml exits 2 naming the bad field", async () => {
    const dir = await mkdtemp(join(tmpdir(), "netclaim-cli-"));
    const file = join(dir, "bad.yaml");
    await writeFile(file, "nri:\n  pluginIndex: abc\n");
    const { code, stderr } = await netclaim("agent", "--config", file, "--dry-run");
    assert.equal(code, 2);
    assert.match(stderr, /nri\.pluginIndex: must be exactly two digits/);
    assert.doesNotMatch(stderr, /\n\s+at /, "a user error must not print a stack trace");
  });

  it("agent --dry-run prints the merged configuration", async () => {
    const { code, stdout } = await netclaim("agent", "--dry-run", "--node-name", "worker-1", "--dra-versions", "v1beta1");
    assert.equal(code, 0);
    const config = JSON.parse(stdout) as { nodeName: string; kubelet: { draVersions: string[] } };
    assert.equal(config.nodeName, "worker-1");
    assert.deepEqual(config.kubelet.draVersions, ["v1beta1"]);
  });

  it("devices shows what would be published from a sysfs tree, and why", async () => {
    const root = await mkdtemp(join(tmpdir(), "netclaim-sysfs-"));
    await writeSysfsFixture(root, connectxNode());
    const dir = await mkdtemp(join(tmpdir(), "netclaim-cli-"));
    const optIn = join(dir, "opt-in.yaml");
    await writeFile(optIn, "devices:\n  include: []\n");
    const all = await netclaim("devices", "--root", root, "--json");
    assert.equal(all.code, 0, all.stderr);
    const reports = JSON.parse(all.stdout) as { device: string; publish: boolean; reason: string }[];
    assert.ok(reports.some((r) => r.publish), "the ConnectX fixture has publishable devices");
    assert.ok(reports.some((r) => !r.publish && /default route/.test(r.reason)), "the uplink is never published");
    const none = await netclaim("devices", "--root", root, "--json", "--config", optIn);
    assert.equal(none.code, 0, none.stderr);
    assert.ok((JSON.parse(none.stdout) as { publish: boolean }[]).every((r) => !r.publish), "an empty include list publishes nothing");
  });

  it("devices keeps guarded kinds back even for include ifName *, and opts in by kinds", async () => {
    const root = await mkdtemp(join(tmpdir(), "netclaim-sysfs-"));
    await writeSysfsFixture(root, cniNode());
    const dir = await mkdtemp(join(tmpdir(), "netclaim-cli-"));
    const everything = join(dir, "everything.yaml");
    await writeFile(everything, 'devices:\n  include: [{ifName: "*"}]\n');
    const bridges = join(dir, "bridges.yaml");
    await writeFile(bridges, 'devices:\n  include: [{ifName: "br-*", kinds: [bridge]}]\n');
    const all = await netclaim("devices", "--root", root, "--config", everything);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /^no +br-storage +br-storage .*never published by default: bridge \(opt in with include\[\]\.kinds: \[bridge\] or name it exactly\)$/m);
    const opted = await netclaim("devices", "--root", root, "--config", bridges, "--json");
    assert.equal(opted.code, 0, opted.stderr);
    const reports = JSON.parse(opted.stdout) as { ifName: string; kind?: string; publish: boolean }[];
    assert.deepEqual(reports.filter((r) => r.publish).map((r) => [r.ifName, r.kind]), [["br-storage", "bridge"]]);
  });

  it("devices --config with an unknown kind exits 2 and lists the valid kinds", async () => {
    const dir = await mkdtemp(join(tmpdir(), "netclaim-cli-"));
    const file = join(dir, "typo.yaml");
    await writeFile(file, 'devices:\n  include: [{ifName: "ncdemo*", kinds: [veths]}]\n');
    const { code, stderr } = await netclaim("devices", "--config", file);
    assert.equal(code, 2);
    assert.match(stderr, /devices\.include\.0\.kinds\.0: unknown kind "veths"; valid kinds: veth, netkit, bridge, .*, cni\n/);
  });

  it("rejects an unknown command and an unknown flag with exit status 2", async () => {
    assert.equal((await netclaim("frobnicate")).code, 2);
    const flag = await netclaim("agent", "--no-such-flag");
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /no-such-flag/);
  });
});
