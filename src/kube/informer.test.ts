import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { KubeClient } from "./client.ts";
import { Informer } from "./informer.ts";
import type { KubeObject } from "./types.ts";

/**
 * A scripted API server: each list or watch request takes the next step of
 * its script, so a test decides exactly which failures the informer meets.
 */
type Step = (req: http.IncomingMessage, res: http.ServerResponse) => void;

let server: http.Server;
let lists: Step[] = [];
let watches: Step[] = [];
const seen: string[] = [];

const object = (name: string, rv: string): KubeObject => ({ metadata: { name, resourceVersion: rv } });
const listOf = (rv: string, ...items: KubeObject[]): Step => (_req, res) => {
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ metadata: { resourceVersion: rv }, items }));
};
const status = (code: number): Step => (_req, res) => {
  res.statusCode = code;
  res.end(JSON.stringify({ kind: "Status", code, reason: "Scripted", message: `scripted ${code}` }));
};
const events = (...lines: unknown[]): Step => (_req, res) => {
  res.setHeader("content-type", "application/json");
  for (const line of lines) res.write(`${JSON.stringify(line)}\n`);
  res.end();
};
/** A watch that stays open until the client goes. */
const hang: Step = (_req, res) => {
  res.setHeader("content-type", "application/json");
  res.flushHeaders();
};

before(async () => {
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const isWatch = url.searchParams.get("watch") === "true";
    seen.push(`${isWatch ? "watch" : "list"} rv=${url.searchParams.get("resourceVersion") ?? ""} fs=${url.searchParams.get("fieldSelector") ?? ""}`);
    const step = (isWatch ? watches : lists).shift() ?? hang;
    step(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});

after(() => {
  server.close();
});

function client(): KubeClient {
  const { port } = server.address() as AddressInfo;
  return KubeClient.create({ server: new URL(`http://127.0.0.1:${port}`), tls: {}, authorization: () => "Bearer t" });
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe("Informer", () => {
  it("lists, follows the watch, resumes after the server ends it, and relists on 410", async () => {
    seen.length = 0;
    lists = [listOf("10", object("a", "10")), listOf("30", object("c", "30"))];
    watches = [
      events({ type: "ADDED", object: object("b", "11") }, { type: "BOOKMARK", object: object("", "12") }),
      events({ type: "DELETED", object: object("a", "13") }, { type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired" } }),
    ];
    const kube = client();
    const informer = new Informer<KubeObject>(kube, { path: "/apis/x/v1/things", fieldSelector: "spec.nodeName=n", onChange: () => undefined, backoff: { initialMs: 1, maxMs: 2 } });
    informer.start();
    await informer.synced();
    await until(() => seen.length >= 5);
    assert.deepEqual(seen.slice(0, 5), [
      "list rv= fs=spec.nodeName=n",
      "watch rv=10 fs=spec.nodeName=n",
      "watch rv=12 fs=spec.nodeName=n",
      "list rv= fs=spec.nodeName=n",
      "watch rv=30 fs=spec.nodeName=n",
    ]);
    assert.deepEqual(informer.list().map((o) => o.metadata.name), ["c"]);
    await informer.stop();
    kube.close();
  });

  it("tells of no change for the event of a write the caller observed, and of every other", async () => {
    lists = [listOf("10", object("a", "10"))];
    watches = [events({ type: "MODIFIED", object: object("a", "11") }, { type: "MODIFIED", object: object("a", "12") }, { type: "ADDED", object: object("b", "13") }), hang];
    const kube = client();
    const changes: string[] = [];
    const informer: Informer<KubeObject> = new Informer<KubeObject>(kube, {
      path: "/apis/x/v1/things",
      onChange: () => changes.push(informer.list().map((o) => `${o.metadata.name ?? ""}@${o.metadata.resourceVersion ?? ""}`).join(",")),
    });
    // The caller wrote a@11 and put the answer into the cache before the watch told of it.
    seen.length = 0;
    informer.start();
    try {
      await informer.synced();
      informer.observe(object("a", "11"));
      await until(() => changes.length >= 3);
      assert.deepEqual(changes, ["a@10", "a@12", "a@12,b@13"]);
      // Its next watch takes the hanging step, not one of the next test's.
      await until(() => seen.filter((request) => request.startsWith("watch")).length >= 2);
    } finally {
      await informer.stop();
      kube.close();
    }
  });

  it("keeps restarting with backoff through any error, then serves the cache", async () => {
    seen.length = 0;
    lists = [status(500), status(403), listOf("5", object("a", "5")), listOf("6", object("a", "6"), object("b", "6"))];
    watches = [status(503)];
    const errors: unknown[] = [];
    const kube = client();
    const informer = new Informer<KubeObject>(kube, { path: "/apis/x/v1/things", onChange: () => undefined, onError: (e) => errors.push(e), backoff: { initialMs: 1, maxMs: 4 } });
    informer.start();
    await until(() => informer.list().length === 2);
    assert.equal(informer.restarts, 3);
    assert.deepEqual(errors.map((e) => (e as { status?: number }).status), [500, 403, 503]);
    await informer.stop();
    kube.close();
  });

  it("stops within 500 ms while a watch is open, and ends the watch's connection", async () => {
    const boundMs = 500;
    lists = [listOf("1")];
    let watchOpen = false;
    let watchEnded!: Promise<void>;
    watches = [
      (req, res) => {
        watchEnded = new Promise((resolve) => {
          res.on("close", resolve);
        });
        hang(req, res);
        watchOpen = true;
      },
    ];
    const kube = client();
    // The server would end this watch only after an hour, and the informer's idle timer fires after three minutes.
    const informer = new Informer<KubeObject>(kube, { path: "/apis/x/v1/things", onChange: () => undefined, timeoutSeconds: 3600 });
    informer.start();
    await informer.synced();
    await until(() => watchOpen);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the response headers reach the client
    const started = performance.now();
    const late = (what: string) =>
      new Promise<string>((resolve) => {
        setTimeout(() => {
          resolve(`${what} after ${boundMs} ms`);
        }, boundMs).unref();
      });
    // An informer that failed to stop retries for good and would keep this file's process alive after the failure.
    const failsafe = setTimeout(() => process.exit(1), 4 * boundMs).unref();
    assert.equal(await Promise.race([informer.stop().then(() => "stopped"), late("still stopping")]), "stopped");
    const stopMs = performance.now() - started;
    assert.ok(stopMs < boundMs, `stop() took ${stopMs.toFixed(0)} ms`);
    assert.equal(await Promise.race([watchEnded.then(() => "ended"), late("the watch is still open")]), "ended");
    clearTimeout(failsafe);
    kube.close();
  });
});
