import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { pino } from "pino";
import { StateStore } from "../store/index.ts";
import { AllocationPreparer } from "./allocation-preparer.ts";
import { DraPlugin } from "./plugin.ts";
import { socketPaths } from "./sockets.ts";

describe("DraPlugin", () => {
  it("DraPlugin.start unwinds what it bound when a later step fails, and removes nothing it did not create", async () => {
    const dir = await mkdtemp("/tmp/nc-dra-plugin-");
    try {
      const kubeletRootDir = join(dir, "kubelet");
      const paths = socketPaths({ kubeletRootDir, driver: "netclaim.dev" });
      await mkdir(join(kubeletRootDir, "plugins_registry"), { recursive: true });
      await writeFile(paths.registration, "not a socket");
      await assert.rejects(
        DraPlugin.start({
          driver: "netclaim.dev",
          kubeletRootDir,
          store: await StateStore.open(join(dir, "state")),
          claimSource: { get: () => Promise.reject(new Error("unused")) },
          preparer: new AllocationPreparer(),
          logger: pino({ level: "silent" }),
        }),
        { code: "DRA_SOCKET", path: paths.registration },
      );
      assert.equal(existsSync(paths.dra), false, "the DRA socket bound first is gone");
      assert.equal(readFileSync(paths.registration, "utf8"), "not a socket");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("DraPlugin.start refuses a health re-send interval the kubelet would time out on", async () => {
    const dir = await mkdtemp("/tmp/nc-dra-plugin-");
    try {
      await assert.rejects(
        DraPlugin.start({
          driver: "netclaim.dev",
          kubeletRootDir: join(dir, "kubelet"),
          store: await StateStore.open(join(dir, "state")),
          claimSource: { get: () => Promise.reject(new Error("unused")) },
          preparer: new AllocationPreparer(),
          healthResendMs: 30_000,
          logger: pino({ level: "silent" }),
        }),
        RangeError,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
