/** The benchmarks' admin client of a test cluster. */
import { KubeClient, kubeconfigCredentials } from "../src/kube/index.ts";

/** A client with the credentials of the kubeconfig at `path`. */
export function kubeClientFrom(path: string): KubeClient {
  return KubeClient.create(kubeconfigCredentials(path));
}
