import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { InventorySnapshot } from "../inventory/index.ts";
import { KubeClient } from "../kube/index.ts";
import type { DeviceTaint } from "../kube/index.ts";
import { SlicePublisher } from "./publisher.ts";

const NODE = "worker-1";
const DRIVER = "netclaim.dev";
const noDevices = { current: (): InventorySnapshot => ({ reports: [] }), subscribe: () => () => undefined };

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A fake API server on loopback; each subclass answers the requests its tests need. */
abstract class LoopbackApi {
  readonly #server = http.createServer((request, response) => {
    this.handle(request, response);
  });

  protected abstract handle(request: http.IncomingMessage, response: http.ServerResponse): void;

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

/**
 * An API server with the Node, no slices, a watch that stays open, and slice
 * creates that fail `failCreates` times before they succeed.
 */
class FakeApi extends LoopbackApi {
  failCreates = 0;
  created = 0;
  protected handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const url = new URL(request.url ?? "/", "http://api");
    response.setHeader("content-type", "application/json");
    if (url.pathname === `/api/v1/nodes/${NODE}`) {
      response.end(JSON.stringify({ metadata: { name: NODE, uid: "node-uid" } }));
    } else if (request.method === "POST") {
      this.#created(request, response);
    } else if (url.searchParams.get("watch") === "true") {
      response.flushHeaders();
    } else {
      response.end(JSON.stringify({ metadata: { resourceVersion: "1" }, items: [] }));
    }
  }

  #created(request: http.IncomingMessage, response: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      if (this.failCreates > 0) {
        this.failCreates--;
        response.statusCode = 500;
        response.end(JSON.stringify({ kind: "Status", reason: "InternalError", message: "etcd is away" }));
        return;
      }
      this.created++;
      const slice = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { metadata: Record<string, unknown> };
      response.statusCode = 201;
      response.end(JSON.stringify({ ...slice, metadata: { ...slice.metadata, resourceVersion: "2" } }));
    });
  }
}

describe("SlicePublisher.publishedOnce", () => {
  let api: FakeApi;
  let client: KubeClient;
  let publisher: SlicePublisher | undefined;

  beforeEach(async () => {
    api = new FakeApi();
    client = KubeClient.create({ server: new URL(await api.start()), tls: {}, authorization: () => "Bearer t" });
  });

  afterEach(async () => {
    await publisher?.stop();
    client.close();
    await api.stop();
  });

  it("holds once the slices were written", async () => {
    publisher = new SlicePublisher({ client, driverName: DRIVER, nodeName: NODE, devices: noDevices });
    assert.equal(publisher.publishedOnce, false);
    await publisher.start();
    assert.equal(api.created, 1);
    assert.equal(publisher.publishedOnce, true);
  });

  it("does not plan again for a snapshot that publishes what the slices already hold", async () => {
    let revision = 1;
    let reads = 0;
    const listeners: ((snapshot: InventorySnapshot) => void)[] = [];
    const devices = {
      current: (): InventorySnapshot => {
        reads++;
        return { reports: [] };
      },
      subscribe: (listener: (snapshot: InventorySnapshot) => void) => {
        listeners.push(listener);
        return () => undefined;
      },
      get publishedRevision(): number {
        return revision;
      },
    };
    const announce = async (): Promise<void> => {
      const before = publisher?.reconciles ?? 0;
      for (const listener of listeners) listener({ reports: [] });
      await until(() => (publisher?.reconciles ?? 0) > before);
    };
    // The taints' source tells of every health change; only a change of the taints counts.
    let taintMap = new Map<string, DeviceTaint[]>();
    const taintListeners: (() => void)[] = [];
    const taints = {
      current: () => taintMap,
      subscribe: (listener: () => void) => {
        taintListeners.push(listener);
        return () => undefined;
      },
    };
    const healthChanged = async (): Promise<void> => {
      const before = publisher?.reconciles ?? 0;
      for (const listener of taintListeners) listener();
      await until(() => (publisher?.reconciles ?? 0) > before);
    };
    publisher = new SlicePublisher({ client, driverName: DRIVER, nodeName: NODE, devices, taints });
    await publisher.start();
    assert.equal(api.created, 1);
    // The first snapshot after the write is planned: the slices are as written.
    await announce();
    const planned = reads;
    await announce();
    await announce();
    assert.equal(reads, planned, "the same revision, the same slices: no plan");
    revision = 2;
    await announce();
    assert.equal(reads, planned + 1, "a new revision is planned");
    await healthChanged();
    assert.equal(reads, planned + 1, "the same taints: no plan");
    taintMap = new Map([["nic0", [{ key: "netclaim.dev/unhealthy", value: "down", effect: "NoSchedule" }]]]);
    await healthChanged();
    assert.equal(reads, planned + 2, "new taints are planned");
    assert.equal(api.created, 1);
  });

  it("does not hold while writing fails, and holds after the retry that succeeds", async () => {
    api.failCreates = 1;
    const errors: unknown[] = [];
    publisher = new SlicePublisher({
      client,
      driverName: DRIVER,
      nodeName: NODE,
      devices: noDevices,
      backoff: { initialMs: 10, maxMs: 10 },
      onError: (err) => errors.push(err),
    });
    await publisher.start();
    assert.equal(errors.length, 1);
    assert.equal(publisher.publishedOnce, false);
    const retried = publisher;
    await until(() => retried.publishedOnce);
    assert.equal(api.created, 1);
  });
});

/**
 * An API server whose slice another writer changed after the publisher listed it, without a
 * watch event to say so (it came before the answer to the publisher's own write, or the watch
 * is reconnecting): the first list shows resourceVersion 5, the slice is at 7.
 */
class ConflictingApi extends LoopbackApi {
  readonly puts: string[] = [];
  #lists = 0;
  protected handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const url = new URL(request.url ?? "/", "http://api");
    response.setHeader("content-type", "application/json");
    const slice = (resourceVersion: string) => ({
      apiVersion: "resource.k8s.io/v1",
      kind: "ResourceSlice",
      metadata: { name: `${NODE}-${DRIVER}-0`, resourceVersion, ownerReferences: [{ apiVersion: "v1", kind: "Node", name: NODE, uid: "node-uid", controller: true }] },
      spec: { driver: DRIVER, nodeName: NODE, pool: { name: NODE, generation: 0, resourceSliceCount: 1 }, devices: [{ name: "gone" }] },
    });
    if (url.pathname === `/api/v1/nodes/${NODE}`) {
      response.end(JSON.stringify({ metadata: { name: NODE, uid: "node-uid" } }));
    } else if (request.method === "PUT") {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { metadata: { resourceVersion?: string } };
        this.puts.push(body.metadata.resourceVersion ?? "");
        const current = body.metadata.resourceVersion === "7";
        response.statusCode = current ? 200 : 409;
        response.end(JSON.stringify(current ? { ...body, metadata: { ...body.metadata, resourceVersion: "8" } } : { kind: "Status", reason: "Conflict", message: "the object has been modified" }));
      });
    } else if (url.searchParams.get("watch") === "true") {
      response.flushHeaders();
    } else {
      this.#lists++;
      response.end(JSON.stringify({ metadata: { resourceVersion: "9" }, items: [slice(this.#lists === 1 ? "5" : "7")] }));
    }
  }
}

describe("SlicePublisher on a conflict", () => {
  it("reads its slices again and writes over the current version, even when no watch event comes", async () => {
    const api = new ConflictingApi();
    const client = KubeClient.create({ server: new URL(await api.start()), tls: {}, authorization: () => "Bearer t" });
    const publisher = new SlicePublisher({ client, driverName: DRIVER, nodeName: NODE, devices: noDevices, backoff: { initialMs: 10, maxMs: 10 } });
    try {
      await publisher.start();
      await until(() => publisher.publishedOnce);
      assert.deepEqual(api.puts, ["5", "7"]);
    } finally {
      await publisher.stop();
      client.close();
      await api.stop();
    }
  });
});
