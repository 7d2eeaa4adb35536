/** netclaim's NRI plugin with a no-op RunPodSandbox handler: the benchmark's subject. */
import { createNriPlugin } from "../../src/nri/index.ts";

const socketPath = process.argv[2];
if (socketPath === undefined) throw new TypeError("usage: noop-plugin.ts <nri socket>");
const plugin = createNriPlugin({ runPodSandbox() {} }, { socketPath, pluginName: "netclaim-bench", pluginIndex: "10" });
plugin.onStateChange((state) => {
  if (state === "disconnected") process.exit(0); // the benchmark's runtime went away
});
plugin.start();
