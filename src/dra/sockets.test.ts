import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:net";
import { lstat, mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { DraSocketError } from "./errors.ts";
import { bindUnixSocket, removeAbandonedDriverSockets, socketPaths, type SocketPaths } from "./sockets.ts";

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

  it("bindUnixSocket never lets the socket appear at its path before it is owner-only", async () => {
    const path = join(dir, "dra.sock");
    // What bind(2) saw: a socket bound straight at `path` with a permissive umask is reachable by anyone until a later chmod.
    const atBind: { boundAt: string; pathExisted: boolean; bindDirMode: number }[] = [];
    const bindAsync = server.bindAsync.bind(server);
    server.bindAsync = (port, credentials, callback) => {
      bindAsync(port, credentials, (err, bound) => {
        const boundAt = port.replace(/^unix:\/\//, "");
        Promise.all([lstat(path).then(() => true, () => false), stat(dirname(boundAt))])
          .then(([pathExisted, bindDir]) => {
            atBind.push({ boundAt, pathExisted, bindDirMode: bindDir.mode & 0o777 });
            callback(err, bound);
          })
          .catch((statErr: unknown) => {
            callback(statErr as Error, bound);
          });
      });
    };
    await bindUnixSocket(server, path);
    const [seen, ...more] = atBind;
    assert.ok(seen !== undefined && more.length === 0, "bound once");
    assert.notEqual(seen.boundAt, path, "bound somewhere other than the final path");
    assert.equal(seen.pathExisted, false, "nothing at the final path while the socket had its umask mode");
    assert.equal(seen.bindDirMode, 0o700, "bound inside a directory only the owner can enter");
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ["dra.sock"], "the private directory is gone");
  });

  it("bindUnixSocket refuses to remove a file that is not a socket", async () => {
    const path = join(dir, "dra.sock");
    await writeFile(path, "precious");
    await assert.rejects(bindUnixSocket(server, path), /a file that is not a socket is in the way/);
  });
});

describe("removeAbandonedDriverSockets", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp("/tmp/nc-dra-sweep-");
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const both = (paths: SocketPaths): string[] => [paths.registration, paths.dra];

  /** A socket whose process exited without removing it, as a killed agent's. */
  function abandonedSocket(path: string): void {
    execFileSync(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`]);
  }

  it("removes the sockets of killed instances, keeps a live instance's and its own, and leaves other drivers' alone", async () => {
    const own = socketPaths({ kubeletRootDir: dir, driver: "netclaim.dev", podUID: "new" });
    const killed = socketPaths({ kubeletRootDir: dir, driver: "netclaim.dev", podUID: "killed" });
    const live = socketPaths({ kubeletRootDir: dir, driver: "netclaim.dev", podUID: "old" });
    const other = socketPaths({ kubeletRootDir: dir, driver: "gpu.example.com", podUID: "killed" });
    for (const path of [...both(own), ...both(killed), ...both(live), ...both(other)]) await mkdir(dirname(path), { recursive: true });
    for (const path of [...both(own), ...both(killed), ...both(other)]) abandonedSocket(path);
    // The old agent of a rolling update: alive, its sockets accept connections.
    const servers = both(live).map((path) => new Promise<Server>((resolve) => {
      const server = createServer();
      server.listen(path, () => {
        resolve(server);
      });
    }));
    const listening = await Promise.all(servers);
    try {
      const removed = await removeAbandonedDriverSockets(own, "netclaim.dev");
      assert.deepEqual(removed.sort(), both(killed).sort());
      for (const path of [...both(own), ...both(live), ...both(other)]) assert.ok((await lstat(path)).isSocket(), `${path} kept`);
    } finally {
      for (const server of listening) server.close();
    }
  });

  it("finds nothing to remove where the kubelet's directories do not exist yet", async () => {
    assert.deepEqual(await removeAbandonedDriverSockets(socketPaths({ kubeletRootDir: join(dir, "none"), driver: "netclaim.dev" }), "netclaim.dev"), []);
  });
});
