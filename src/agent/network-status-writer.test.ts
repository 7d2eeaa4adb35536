import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { KubeApiError, type KubeClient } from "../kube/index.ts";
import { NETWORK_STATUS_ANNOTATION, type AttachedInterface } from "./network-status.ts";
import { NetworkStatusWriter } from "./network-status-writer.ts";

const pod = { namespace: "default", name: "web-0", uid: "pod-uid-1" };
const STATUS_PATH = "/api/v1/namespaces/default/pods/web-0/status";
const multusEntries = [{ name: "nc-default", interface: "eth0", ips: ["10.88.0.12"], default: true, dns: {} }];
const nic: AttachedInterface = { claim: { namespace: "default", name: "web-0-nic" }, request: "nic", interfaceName: "nc0", addresses: ["192.0.2.10/24"] };

function apiError(method: string, status: number, reason: string): KubeApiError {
  return new KubeApiError("KUBE_API", { method, path: STATUS_PATH, status, reason, message: reason });
}

/**
 * One pod as the API server keeps it: GET returns its metadata, a merge patch
 * carrying a resourceVersion other than the pod's fails with 409 Conflict.
 * `beforePatch` runs as a patch arrives: another writer's turn.
 */
class FakePodApi {
  uid = pod.uid;
  resourceVersion = 1;
  annotations: Record<string, string> = { [NETWORK_STATUS_ANNOTATION]: JSON.stringify(multusEntries) };
  gets = 0;
  patches: { resourceVersion: string; annotations: Record<string, string> }[] = [];
  beforePatch: (() => void) | undefined;
  failGet: KubeApiError | undefined;

  /** Another writer's change (Multus, the kubelet): a new resourceVersion. */
  write(annotations: Record<string, string> = this.annotations): void {
    this.annotations = { ...annotations };
    this.resourceVersion++;
  }

  client(): KubeClient {
    return {
      request: (method: string, path: string, options: { body?: unknown; contentType?: string } = {}) => {
        assert.equal(path, STATUS_PATH);
        if (method === "GET") {
          this.gets++;
          if (this.failGet !== undefined) return Promise.reject(this.failGet);
          return Promise.resolve({ metadata: { ...pod, uid: this.uid, resourceVersion: String(this.resourceVersion), annotations: this.annotations } });
        }
        assert.equal(method, "PATCH");
        assert.equal(options.contentType, "application/merge-patch+json");
        this.beforePatch?.();
        const { metadata } = options.body as { metadata: { resourceVersion: string; annotations: Record<string, string> } };
        this.patches.push(metadata);
        if (metadata.resourceVersion !== String(this.resourceVersion)) return Promise.reject(apiError("PATCH", 409, "Conflict"));
        this.write({ ...this.annotations, ...metadata.annotations });
        return Promise.resolve({});
      },
    } as unknown as KubeClient;
  }

  entries(): { name: string; interface?: string }[] {
    return JSON.parse(this.annotations[NETWORK_STATUS_ANNOTATION] ?? "[]") as { name: string; interface?: string }[];
  }
}

async function report(api: FakePodApi, options: { maxAttempts?: number } = {}): Promise<void> {
  const writer = new NetworkStatusWriter({ client: api.client(), driverName: "netclaim.dev", logger: pino({ level: "silent" }), retryMs: 1, ...options });
  writer.report(pod, [nic]);
  await writer.close(5_000);
}

describe("NetworkStatusWriter", () => {
  it("adds our entry beside Multus's, patching the pod at the resourceVersion it read", async () => {
    const api = new FakePodApi();
    await report(api);
    assert.deepEqual(api.patches.map((p) => p.resourceVersion), ["1"]);
    assert.deepEqual(api.entries().map((e) => e.interface), ["eth0", "nc0"]);
  });

  it("reads again after a conflict and keeps what the other writer wrote meanwhile", async () => {
    const api = new FakePodApi();
    const multusRewrite = [...multusEntries, { name: "default/macvlan-a", interface: "net1", dns: {} }];
    api.beforePatch = () => {
      api.beforePatch = undefined;
      api.write({ [NETWORK_STATUS_ANNOTATION]: JSON.stringify(multusRewrite) });
    };
    await report(api);
    assert.deepEqual(api.patches.map((p) => p.resourceVersion), ["1", "2"]);
    assert.equal(api.gets, 2);
    assert.deepEqual(api.entries().map((e) => e.interface), ["eth0", "net1", "nc0"]);
  });

  it("gives up after maxAttempts conflicts without rejecting, and writes nothing", async () => {
    const api = new FakePodApi();
    api.beforePatch = () => {
      api.write();
    };
    const before = api.annotations[NETWORK_STATUS_ANNOTATION];
    await report(api, { maxAttempts: 3 });
    assert.equal(api.gets, 3);
    assert.equal(api.patches.length, 3);
    assert.equal(api.annotations[NETWORK_STATUS_ANNOTATION], before);
  });

  it("retries a failed read, and stops when the pod is gone", async () => {
    const failing = new FakePodApi();
    failing.failGet = apiError("GET", 503, "ServiceUnavailable");
    await report(failing, { maxAttempts: 4 });
    assert.equal(failing.gets, 4);
    const gone = new FakePodApi();
    gone.failGet = apiError("GET", 404, "NotFound");
    await report(gone);
    assert.equal(gone.gets, 1);
  });

  it("leaves a malformed annotation and a pod of the same name with another UID alone", async () => {
    const malformed = new FakePodApi();
    malformed.annotations = { [NETWORK_STATUS_ANNOTATION]: "[{" };
    await report(malformed);
    assert.deepEqual(malformed.patches, []);
    const replaced = new FakePodApi();
    replaced.uid = "pod-uid-2";
    await report(replaced);
    assert.deepEqual(replaced.patches, []);
  });

  it("writes nothing when the annotation already lists our entry", async () => {
    const api = new FakePodApi();
    await report(api);
    await report(api);
    assert.equal(api.patches.length, 1);
  });
});
