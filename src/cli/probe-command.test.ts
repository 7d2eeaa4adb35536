// `netclaim probe` as the kubelet runs it, a child process, against a real
// HttpEndpoints on a probe socket of a temporary runtimeDir.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it, mock } from "node:test";
import { promisify } from "node:util";
import { pino } from "pino";
import { HttpEndpoints } from "../agent/http-endpoints.ts";
import { AgentMetrics } from "../agent/metrics.ts";
import { probeSocketPath, READINESS_CONDITIONS, Readiness } from "../agent/probes.ts";
import { runProbeCommand } from "./probe-command.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const POD_UID = "7d0e5c2a-9f1b-4c3d-8e2f-1a2b3c4d5e6f";

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function netclaim(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [MAIN, ...args], { env: { PATH: process.env["PATH"] ?? "", ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as Outcome;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("netclaim probe", () => {
  let dir = "";
  let config = "";
  const started: HttpEndpoints[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "netclaim-probe-"));
    config = join(dir, "agent.yaml");
    await writeFile(config, `apiVersion: netclaim.dev/v1alpha1\nkind: AgentConfig\nruntimeDir: ${dir}\n`);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    await Promise.all(started.splice(0).map((endpoints) => endpoints.close()));
  });

  /** An agent of pod `podUID` serving its probe socket (and no port), as the agent does. */
  async function agent(options: { readiness?: Readiness; alive?: () => Promise<readonly string[]>; podUID?: string }): Promise<string> {
    const readiness = options.readiness ?? new Readiness();
    const socketPath = probeSocketPath({ runtimeDir: dir, kubelet: { podUID: options.podUID } });
    started.push(
      await HttpEndpoints.start({
        socketPath,
        notReady: () => readiness.missing(),
        notAlive: options.alive ?? (() => Promise.resolve([])),
        metrics: new AgentMetrics().registry,
        logger: pino({ level: "silent" }),
      }),
    );
    return socketPath;
  }

  it("exits 0 once its pod's agent is ready, and 1 with the agent's answer before", async () => {
    const readiness = new Readiness();
    await agent({ readiness, podUID: POD_UID });
    const starting = await netclaim(["probe", "ready", "--config", config], { POD_UID });
    assert.equal(starting.code, 1);
    assert.equal(starting.stderr, "netclaim probe ready: the agent answered 503: not ready: registered with the kubelet, connected to NRI, ResourceSlices published\n");

    for (const condition of READINESS_CONDITIONS) readiness.track(condition, () => true);
    assert.deepEqual(await netclaim(["probe", "ready", "--config", config], { POD_UID }), { code: 0, stdout: "ok\n", stderr: "" });
  });

  it("asks /livez for live", async () => {
    let problems: string[] = [];
    await agent({ podUID: POD_UID, alive: () => Promise.resolve(problems) });
    assert.deepEqual(await netclaim(["probe", "live", "--config", config], { POD_UID }), { code: 0, stdout: "ok\n", stderr: "" });
    problems = ["engine thread: no answer within 5000 ms"];
    const dead = await netclaim(["probe", "live", "--config", config], { POD_UID });
    assert.equal(dead.code, 1);
    assert.equal(dead.stderr, "netclaim probe live: the agent answered 503: not alive: engine thread: no answer within 5000 ms\n");
  });

  it("asks the agent of its own pod only, by POD_UID", async () => {
    const readiness = new Readiness();
    for (const condition of READINESS_CONDITIONS) readiness.track(condition, () => true);
    // The old agent of a rolling update, ready; the new one has not started serving yet.
    await agent({ readiness, podUID: "11111111-2222-4333-8444-555555555555" });
    const { code, stdout, stderr } = await netclaim(["probe", "ready", "--config", config], { POD_UID });
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      `netclaim probe ready: the agent is not serving its probe socket at ${join(dir, "probes", `${POD_UID}.sock`)}: not started yet or not running (ENOENT)\n`,
    );
  });

  it("asks probes/agent.sock without a pod UID, and finds the runtimeDir in the environment too", async () => {
    await agent({});
    const other = await mkdtemp(join(tmpdir(), "netclaim-probe-"));
    try {
      assert.equal((await netclaim(["probe", "live", "--config", config])).code, 0);
      // NETCLAIM_RUNTIME_DIR wins over the file, as for the agent.
      const elsewhere = await netclaim(["probe", "live", "--config", config], { NETCLAIM_RUNTIME_DIR: other });
      assert.equal(elsewhere.code, 1);
      assert.match(elsewhere.stderr, new RegExp(`not serving its probe socket at ${other}/probes/agent\\.sock: not started yet or not running`));
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("gives up on an agent that does not answer in time", async () => {
    const socketPath = await agent({ podUID: POD_UID, alive: () => new Promise(() => undefined) });
    const stderr = mock.method(process.stderr, "write", () => true);
    try {
      const code = await runProbeCommand(["live", "--config", config], { env: { POD_UID }, timeoutMs: 200 });
      assert.equal(code, 1);
      assert.deepEqual(
        stderr.mock.calls.map((call) => call.arguments[0]),
        [`netclaim probe live: the agent did not answer GET /livez on ${socketPath} within 0.2 s\n`],
      );
    } finally {
      stderr.mock.restore();
    }
  });

  it("exits 2 for a command line or configuration it cannot use", async () => {
    for (const args of [["probe"], ["probe", "healthy"], ["probe", "ready", "live"], ["probe", "ready", "--port", "9402"]]) {
      const { code, stderr } = await netclaim(args);
      assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
      assert.doesNotMatch(stderr, /\n\s+at /, "a user error must not print a stack trace");
    }
    assert.match((await netclaim(["probe", "healthy"])).stderr, /netclaim probe takes ready or live/);
    const bad = join(dir, "bad.yaml");
    await writeFile(bad, "runtimeDir: relative/dir\n");
    const invalid = await netclaim(["probe", "ready", "--config", bad]);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /runtimeDir: must be an absolute path/);
  });

  it("--help says what it asks and what its exit statuses mean", async () => {
    const { code, stdout } = await netclaim(["probe", "--help"]);
    assert.equal(code, 0);
    assert.match(stdout, /netclaim probe ready\|live \[--config FILE\]/);
    assert.match(stdout, /probes\/<pod UID>\.sock/);
    assert.match(stdout, /0 {2}the agent answered 200/);
    assert.match(stdout, /1 {2}the agent answered otherwise, or not at all/);
    assert.match(stdout, /2 {2}the command line or the configuration is wrong/);
    const main = await netclaim(["help"]);
    assert.match(main.stdout, /probe {5}ask this pod's agent whether it is ready or alive/);
  });
});
