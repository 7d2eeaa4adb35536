/**
 * A DRA plugin in its own process, for tests that kill it: started with one
 * JSON argument (see EntryConfig), prints "ready" on stdout once serving,
 * stops cleanly on SIGTERM.
 */
import { pino } from "pino";
import { DraPlugin, MutableDeviceHealthSource, type DraVersion } from "../../src/dra/index.ts";
import { StateStore } from "../../src/store/index.ts";
import { DRIVER, FileClaimSource, SideEffectPreparer } from "./fixtures.ts";

export interface EntryConfig {
  kubeletRootDir: string;
  stateDir: string;
  claimsFile: string;
  sideEffectsDir: string;
  podUID?: string;
  versions?: DraVersion[];
  prepareDelayMs?: number;
}

const config = JSON.parse(process.argv[2] ?? "{}") as EntryConfig;
const plugin = await DraPlugin.start({
  driver: DRIVER,
  kubeletRootDir: config.kubeletRootDir,
  podUID: config.podUID,
  versions: config.versions,
  store: await StateStore.open(config.stateDir),
  claimSource: new FileClaimSource(config.claimsFile),
  preparer: new SideEffectPreparer({ dir: config.sideEffectsDir, ...(config.prepareDelayMs === undefined ? {} : { delayMs: config.prepareDelayMs }) }),
  health: new MutableDeviceHealthSource([{ pool: "node-a", device: "eth0", health: "healthy" }]),
  logger: pino({ level: "warn" }, process.stderr),
});
process.once("SIGTERM", () => {
  void plugin.close().then(() => process.exit(0));
});
process.stdout.write(`${JSON.stringify({ ready: true, paths: plugin.paths })}\n`);
