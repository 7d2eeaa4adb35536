import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { DraSocketError } from "./errors.ts";
import { bindUnixSocket, socketPaths } from "./sockets.ts";

describe("socketPaths", () => {
  it("socketPaths uses the kubelet plugin helper's names", () => {
    assert.deepEqual(socketPaths({ kubeletRootDir: "/var/lib/kubelet", driver: "netclaim.dev" }), {
      registration: "/var/lib/kubelet/plugins_registry/netclaim.dev-reg.sock",
      dra: "/var/lib/kubelet/plugins/netclaim.dev/dra.sock",
    });
  });

  it("socketPaths adds the pod UID for rolling updates", () => {
    assert.deepEqual(socketPaths({ kubeletRootDir: "/var/lib/kubelet", driver: "netclaim.dev", podUID: "1234-abcd" }), {
      registration: "/var/lib/kubelet/plugins_registry/netclaim.dev-1234-abcd-reg.sock",
      dra: "/var/lib/kubelet/plugins/netclaim.dev/dra-1234-abcd.sock",
    });
  });

  it("socketPaths refuses a path longer than a unix socket allows", () => {
    assert.throws(() => socketPaths({ kubeletRootDir: `/${"k".repeat(80)}`, driver: "netclaim.dev", podUID: "0".repeat(36) }), DraSocketError);
  });
});

describe("bindUnixSocket", () => {
  let dir: string;
  let server: grpc.Server;
  beforeEach(async () => {
    dir = await mkdtemp("/tmp/nc-dra-sock-");
    server = new grpc.Server();
  });
  afterEach(async () => {
    server.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it("bindUnixSocket replaces a stale socket and makes it owner-only", async () => {
    const path = join(dir, "sub", "dra.sock");
    await mkdir(join(dir, "sub"));
    // A process that exits without closing its server leaves the socket file behind, like a crash.
    execFileSync(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`]);
    assert.ok((await stat(path)).isSocket());
    await bindUnixSocket(server, path);
    const info = await stat(path);
    assert.ok(info.isSocket());
    assert.equal(info.mode & 0o777, 0o600);
  });

  it("bindUnixSocket refuses to remove a file that is not a socket", async () => {
    const path = join(dir, "dra.sock");
    await writeFile(path, "precious");
    await assert.rejects(bindUnixSocket(server, path), /a file that is not a socket is in the way/);
  });
});
