// `netclaim doctor` as an admin runs it, a child process, on a "node" whose
// paths are a temporary directory with nothing in it and no API server.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

async function netclaim(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [MAIN, ...args], { env: { PATH: process.env["PATH"] ?? "" } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("netclaim doctor", () => {
  let dir = "";
  let flags: string[] = [];

  before(async () => {
    dir = await mkdtemp("/tmp/nc-doc-cli-");
    await writeFile(join(dir, "agent.yaml"), "apiVersion: netclaim.dev/v1alpha1\nkind: AgentConfig\n");
    flags = ["--config", join(dir, "agent.yaml"), "--nri-socket", join(dir, "nri.sock"), "--kubelet-dir", join(dir, "kubelet"), "--cdi-dir", join(dir, "cdi"), "--state-dir", join(dir, "state"), "--runtime-dir", join(dir, "run")];
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("doctor prints every check as one JSON document and exits 1 when one fails", async () => {
    const { code, stdout } = await netclaim(["doctor", "--output", "json", ...flags]);
    assert.equal(code, 1);
    const report = JSON.parse(stdout) as { checks: { name: string; status: string; message: string }[]; summary: { fail: number } };
    assert.deepEqual([...new Set(report.checks.map((c) => c.name))], [
      "NRI socket",
      "kubelet plugin dirs",
      "kubelet registration",
      "CDI spec dir",
      "API server",
      "network namespaces",
      "macvlan",
      "ipvlan",
      "RDMA netns mode",
      "devices",
      "claim state",
      "attachment journal",
    ]);
    const byName = new Map(report.checks.map((c) => [c.name, c]));
    assert.equal(byName.get("NRI socket")?.message, `no NRI socket at ${join(dir, "nri.sock")}`);
    assert.equal(byName.get("CDI spec dir")?.message, `${join(dir, "cdi")} does not exist`);
    assert.match(byName.get("API server")?.message ?? "", /^no credentials: Cannot find the API server: not in a pod .*; give a kubeconfig with --kubeconfig or KUBECONFIG$/);
    assert.equal(report.summary.fail, report.checks.filter((c) => c.status === "FAIL").length);
  });

  it("doctor prints text with a fix under each failure", async () => {
    const { code, stdout } = await netclaim(["doctor", ...flags]);
    assert.equal(code, 1);
    assert.match(stdout, /^FAIL {2}NRI socket +no NRI socket at .*\n +fix: turn NRI on in the runtime/m);
    assert.match(stdout, /\n\d+ passed, \d+ warnings, \d+ failed\n$/);
  });

  it("doctor refuses an output format it does not know, and explains itself with --help", async () => {
    const yaml = await netclaim(["doctor", "--output", "yaml"]);
    assert.deepEqual([yaml.code, yaml.stderr], [2, "netclaim: Cannot print --output yaml: use text or json\n"]);
    const help = await netclaim(["doctor", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /kubectl exec -n netclaim ds\/netclaim-agent -- netclaim doctor/);
    assert.match((await netclaim(["--help"])).stdout, /\n {2}doctor {4}check whether this node can run netclaim/);
  });
});
