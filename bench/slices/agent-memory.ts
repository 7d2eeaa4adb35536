/**
 * Runs only what the agent runs for slices (inventory, publisher, its
 * informer and client) in a fresh process, so its memory is measured without
 * the benchmark's own harness: prints one JSON line after the pool is
 * published. Inputs come from the environment (see slices.bench.ts).
 */
import { Inventory, devicePolicySchema } from "../../src/inventory/index.ts";
import { KubeClient, kubeconfigCredentials, withToken } from "../../src/kube/index.ts";
import { SlicePublisher } from "../../src/slices/index.ts";

const { BENCH_ROOT, BENCH_NODE, BENCH_TOKEN, BENCH_KUBECONFIG } = process.env;
if (BENCH_ROOT === undefined || BENCH_NODE === undefined || BENCH_TOKEN === undefined || BENCH_KUBECONFIG === undefined) {
  throw new Error("agent-memory: BENCH_ROOT, BENCH_NODE, BENCH_TOKEN and BENCH_KUBECONFIG are required");
}
const client = KubeClient.create(withToken(kubeconfigCredentials(BENCH_KUBECONFIG), BENCH_TOKEN));
const inventory = new Inventory({ root: BENCH_ROOT, policy: devicePolicySchema.parse(undefined) });
await inventory.start();
const publisher = new SlicePublisher({ client, driverName: "netclaim.dev", nodeName: BENCH_NODE, devices: inventory });
await publisher.start();
if (typeof globalThis.gc === "function") globalThis.gc();
const memory = process.memoryUsage();
console.log(JSON.stringify({ devices: inventory.current().reports.filter((r) => r.publish).length, rss: memory.rss, heapUsed: memory.heapUsed }));
await publisher.stop();
await inventory.stop();
client.close();
