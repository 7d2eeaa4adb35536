import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { KubeClient } from "./client.ts";
import type { ApiCredentials } from "./credentials.ts";
import { KubeApiError } from "./errors.ts";

function credentialsFor(server: string): ApiCredentials {
  return { server: new URL(server), tls: {}, authorization: () => undefined };
}

describe("KubeClient onError", () => {
  let server: http.Server;
  let url: string;

  before(async () => {
    server = http.createServer((request, response) => {
      switch (new URL(request.url ?? "/", "http://api").pathname) {
        case "/conflict":
          response.writeHead(409, { "content-type": "application/json" });
          response.end(JSON.stringify({ kind: "Status", reason: "Conflict", message: "the object has been modified" }));
          return;
        case "/html":
          response.writeHead(200, { "content-type": "text/html" });
          response.end("<html>proxy</html>");
          return;
        case "/hang":
          // Never answers: the caller gives up.
          return;
        default:
          response.writeHead(200, { "content-type": "application/json" });
          response.end("{}");
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function failures(run: (client: KubeClient) => Promise<unknown>, serverUrl = url): Promise<KubeApiError[]> {
    const seen: KubeApiError[] = [];
    const client = KubeClient.create(credentialsFor(serverUrl), { onError: (err) => seen.push(err) });
    try {
      await run(client).catch(() => undefined);
    } finally {
      client.close();
    }
    return seen;
  }

  it("hears of API errors, undecodable answers and transport failures, each as its caller sees it", async () => {
    const [conflict] = await failures((client) => client.request("PUT", "/conflict", { body: {} }));
    assert.ok(conflict instanceof KubeApiError);
    assert.deepEqual([conflict.code, conflict.method, conflict.status, conflict.reason], ["KUBE_API", "PUT", 409, "Conflict"]);

    const [decode] = await failures((client) => client.request("GET", "/html"));
    assert.deepEqual([decode?.code, decode?.status], ["KUBE_DECODE", 0]);

    const [watch] = await failures((client) => client.watch("/conflict", {}));
    assert.deepEqual([watch?.code, watch?.method, watch?.status], ["KUBE_API", "GET", 409]);

    // Nothing listens on port 1, so the connection is refused.
    const [transport] = await failures((client) => client.request("GET", "/api"), "http://127.0.0.1:1");
    assert.deepEqual([transport?.code, transport?.status], ["KUBE_TRANSPORT", 0]);
  });

  it("hears nothing of requests that succeed or that the caller aborts", async () => {
    assert.deepEqual(await failures((client) => client.request("GET", "/ok")), []);
    const aborted = await failures((client) => client.request("GET", "/hang", { signal: AbortSignal.timeout(50) }));
    assert.deepEqual(aborted, []);
  });
});
