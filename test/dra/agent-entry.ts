/**
 * A DRA plugin in its own process, for tests that kill it: started with one
 * JSON argument (see EntryConfig), prints "ready" on stdout once serving,
 * stops cleanly on SIGTERM. With `publish`, it also publishes the node's
 * ResourceSlices from a sysfs tree, as the agent does, and stops in the
 * agent's order (the kubelet's plugin first).
 */
import { pino } from "pino";
import { DraPlugin, MutableDeviceHealthSource, type DraVersion } from "../../src/dra/index.ts";
import { Inventory, devicePolicySchema } from "../../src/inventory/index.ts";
import { KubeClient, kubeconfigCredentials } from "../../src/kube/index.ts";
import { SlicePublisher } from "../../src/slices/index.ts";
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
  publish?: { kubeconfig: string; nodeName: string; sysfsRoot: string };
}

const config = JSON.parse(process.argv[2] ?? "{}") as EntryConfig;
const slices = config.publish === undefined ? undefined : await publish(config.publish);
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
  void plugin
    .close()
    .then(() => slices?.stop())
    .then(() => process.exit(0));
});
process.stdout.write(`${JSON.stringify({ ready: true, paths: plugin.paths })}\n`);

async function publish(options: NonNullable<EntryConfig["publish"]>): Promise<{ stop(): Promise<void> }> {
  const client = KubeClient.create(kubeconfigCredentials(options.kubeconfig));
  const inventory = new Inventory({ root: options.sysfsRoot, policy: devicePolicySchema.parse(undefined) });
  await inventory.start();
  const publisher = new SlicePublisher({ client, driverName: DRIVER, nodeName: options.nodeName, devices: inventory });
  await publisher.start();
  return {
    async stop() {
      await publisher.stop();
      await inventory.stop();
      client.close();
    },
  };
}
