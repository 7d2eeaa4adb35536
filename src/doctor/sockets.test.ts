// The checks of the runtime's and the kubelet's sockets and of the CDI
// directory, against real files and unix sockets in a short /tmp directory.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { dirname, join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { socketPaths } from "../dra/index.ts";
import type { RuntimeIdentity } from "../nri/index.ts";
import { checkCdiDir } from "./files.ts";
import { checkKubeletDirs, checkRegistration } from "./kubelet.ts";
import { checkNri, registerAndIdentify } from "./nri.ts";

const POD_UID = "7d0e5c2a-9f1b-4c3d-8e2f-1a2b3c4d5e6f";
const signal = new AbortController().signal;
let dir = "";
const servers: Server[] = [];

before(async () => {
  dir = await mkdtemp("/tmp/nc-doc-");
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

async function listen(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const server = createServer((socket) => socket.destroy());
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
}

/** A socket file nobody listens on, as a killed process leaves it. */
async function abandoned(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  execFileSync(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`]);
}

const containerd22: RuntimeIdentity = { runtimeName: "containerd", runtimeVersion: "v2.2.1", nriVersion: "" };

describe("checkNri", () => {
  it("checkNri fails naming a missing socket and how to turn NRI on", async () => {
    const [result, ...rest] = await checkNri(join(dir, "none.sock"), { identify: () => Promise.reject(new Error("not called")), signal });
    assert.equal(rest.length, 0);
    assert.equal(result?.status, "FAIL");
    assert.equal(result.message, `no NRI socket at ${join(dir, "none.sock")}`);
    assert.match(result.fix ?? "", /enable_nri = true/);
  });

  it("checkNri fails on a file that is not a socket and on a socket nobody listens on", async () => {
    await writeFile(join(dir, "file.sock"), "");
    assert.match((await checkNri(join(dir, "file.sock"), { identify: () => Promise.reject(new Error("not called")), signal }))[0]?.message ?? "", /is not a socket$/);
    await abandoned(join(dir, "stale.sock"));
    const [stale] = await checkNri(join(dir, "stale.sock"), { identify: () => Promise.reject(new Error("not called")), signal });
    assert.equal(stale?.status, "FAIL");
    assert.match(stale.message, /^nothing answers on .*ECONNREFUSED/);
  });

  it("checkNri names the runtime that registered the plugin, and its validator", async () => {
    const path = join(dir, "nri.sock");
    await listen(path);
    const results = await checkNri(path, { identify: (socketPath) => (socketPath === path ? Promise.resolve(containerd22) : Promise.reject(new Error("wrong path"))), signal });
    assert.deepEqual(results.map((r) => [r.name, r.status]), [["NRI socket", "PASS"], ["NRI validator", "PASS"]]);
    assert.equal(results[0]?.message, `${path}: containerd v2.2.1 registers plugins`);
  });

  it("checkNri warns that a runtime before NRI v0.10 has no default validator", async () => {
    const path = join(dir, "nri-old.sock");
    await listen(path);
    const [, validator] = await checkNri(path, { identify: () => Promise.resolve({ runtimeName: "containerd", runtimeVersion: "v2.1.4", nriVersion: "" }), signal });
    assert.equal(validator?.status, "WARN");
    assert.match(validator.message, /has no NRI default validator/);
  });

  it("checkNri fails when the runtime answers but does not register the plugin", async () => {
    const path = join(dir, "nri-mute.sock");
    await listen(path);
    const results = await checkNri(path, { identify: () => Promise.reject(new Error("runtime did not configure and synchronize the plugin in time")), signal });
    assert.equal(results.length, 1);
    assert.match(results[0]?.message ?? "", /accepted a connection but did not register a plugin: runtime did not configure/);
  });
});

describe("registerAndIdentify", () => {
  it("registerAndIdentify fails at once with why the first registration failed, and stops retrying", async () => {
    const path = join(dir, "hangs-up.sock");
    await listen(path); // accepts and hangs up at once, as a runtime that drops a plugin
    const started = Date.now();
    await assert.rejects(registerAndIdentify(path, AbortSignal.timeout(5_000)), (err: Error) => err.message !== "" && !/aborted|timeout/i.test(err.message));
    assert.ok(Date.now() - started < 4_000, "without waiting out the signal");
  });
});

describe("kubelet checks", () => {
  it("checkKubeletDirs fails naming the first missing directory, and passes once both exist", async () => {
    const root = join(dir, "kubelet");
    const options = { kubeletRootDir: root, driver: "netclaim.dev" };
    assert.deepEqual(await checkKubeletDirs(options), {
      name: "kubelet plugin dirs",
      status: "FAIL",
      message: `${root}/plugins_registry does not exist`,
      fix: "mount the kubelet's plugins/ and plugins_registry/ into the agent's pod at their host paths and set kubelet.rootDir (--kubelet-dir) to the kubelet's --root-dir (docs/install.md)",
    });
    await mkdir(join(root, "plugins_registry"), { recursive: true });
    await mkdir(join(root, "plugins"), { recursive: true });
    assert.equal((await checkKubeletDirs(options)).status, "PASS");
  });

  it("checkRegistration looks for the sockets the agent of POD_UID serves", async () => {
    const options = { kubeletRootDir: join(dir, "k1"), driver: "netclaim.dev", podUID: POD_UID };
    const paths = socketPaths(options);
    assert.equal((await checkRegistration(options, signal)).message, `no registration socket at ${paths.registration}`);
    await listen(paths.registration);
    await abandoned(paths.dra);
    assert.match((await checkRegistration(options, signal)).message, /^nothing listens on .*dra-7d0e5c2a.*\.sock .*ECONNREFUSED/);
    await rm(paths.dra);
    await listen(paths.dra);
    assert.deepEqual(await checkRegistration(options, signal), { name: "kubelet registration", status: "PASS", message: `${paths.registration} and ${paths.dra} answer` });
  });

  it("checkRegistration on the host, without a pod UID, finds the agent pod's sockets", async () => {
    const root = join(dir, "k2");
    const paths = socketPaths({ kubeletRootDir: root, driver: "netclaim.dev", podUID: POD_UID });
    await listen(paths.registration);
    await listen(paths.dra);
    assert.equal((await checkRegistration({ kubeletRootDir: root, driver: "netclaim.dev" }, signal)).status, "PASS");
  });
});

describe("checkCdiDir", () => {
  it("checkCdiDir passes on a writable directory and leaves nothing in it", async () => {
    const cdi = join(dir, "cdi");
    await mkdir(cdi);
    assert.deepEqual(await checkCdiDir(cdi), { name: "CDI spec dir", status: "PASS", message: `${cdi} is writable` });
    assert.deepEqual(execFileSync("ls", ["-A", cdi]).toString(), "");
  });

  it("checkCdiDir fails on a missing directory and on a file", async () => {
    assert.equal((await checkCdiDir(join(dir, "no-cdi"))).message, `${join(dir, "no-cdi")} does not exist`);
    await writeFile(join(dir, "cdi-file"), "");
    assert.equal((await checkCdiDir(join(dir, "cdi-file"))).message, `${join(dir, "cdi-file")} is not a directory`);
  });
});
