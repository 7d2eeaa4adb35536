/** Per-test directories and an in-process DRA plugin wired to the test fixtures. */
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { DraPlugin, type DeviceHealthSource, type DraVersion } from "../../src/dra/index.ts";
import { StateStore } from "../../src/store/index.ts";
import { DRIVER, FileClaimSource, SideEffectPreparer } from "./fixtures.ts";

export interface TestDirs {
  root: string;
  kubeletRootDir: string;
  registryDir: string;
  stateDir: string;
  claimsFile: string;
  sideEffectsDir: string;
}

/** Short paths under /tmp: unix socket paths are limited to 107 bytes. */
export function testDirs(): TestDirs {
  const root = mkdtempSync("/tmp/nc-dra-");
  return {
    root,
    kubeletRootDir: join(root, "kubelet"),
    registryDir: join(root, "kubelet", "plugins_registry"),
    stateDir: join(root, "state"),
    claimsFile: join(root, "claims.json"),
    sideEffectsDir: join(root, "effects"),
  };
}

export function removeDirs(dirs: TestDirs): void {
  rmSync(dirs.root, { recursive: true, force: true });
}

export const quietLogger = pino({ level: process.env.NETCLAIM_TEST_LOG ?? "silent" }, process.stderr);

export async function startPlugin(
  dirs: TestDirs,
  options: { versions?: DraVersion[]; health?: DeviceHealthSource; healthResendMs?: number; callBudgetMs?: number } = {},
): Promise<DraPlugin> {
  return DraPlugin.start({
    driver: DRIVER,
    kubeletRootDir: dirs.kubeletRootDir,
    versions: options.versions,
    store: await StateStore.open(dirs.stateDir),
    claimSource: new FileClaimSource(dirs.claimsFile),
    preparer: new SideEffectPreparer({ dir: dirs.sideEffectsDir }),
    health: options.health,
    healthResendMs: options.healthResendMs,
    callBudgetMs: options.callBudgetMs,
    logger: quietLogger,
  });
}
