/** The benchmarks' admin client of a test cluster. */
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient } from "../src/kube/index.ts";

/** A client with the credentials of the kubeconfig at `path`. */
export async function kubeClientFrom(path: string): Promise<KubeClient> {
  const config = new KubeConfig();
  config.loadFromFile(path);
  return KubeClient.create(config);
}
