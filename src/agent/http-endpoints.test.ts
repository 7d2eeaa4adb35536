import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { lstat, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, describe, it } from "node:test";
import { promisify } from "node:util";
import { pino } from "pino";
import { burnCpu } from "../common/testdata/burn-cpu.ts";
import type { Attacher, AttachResult } from "../engine/index.ts";
import { KubeApiError } from "../kube/index.ts";
import type { NriConnectionState } from "../nri/index.ts";
import { EventLoopBusy } from "./event-loop-busy.ts";
import { HttpEndpoints, HttpEndpointsError } from "./http-endpoints.ts";
import { AgentMetrics } from "./metrics.ts";
import { probeSocketPath, READINESS_CONDITIONS, Readiness, unanswered, type LivenessCheck } from "./probes.ts";

const logger = pino({ level: "silent" });

interface Answer {
  status: number;
  body: string;
  contentType: string | null;
}

async function get(endpoints: HttpEndpoints, path: string, method = "GET"): Promise<Answer> {
  const response = await fetch(`http://127.0.0.1:${endpoints.port ?? 0}${path}`, { method });
  return { status: response.status, body: await response.text(), contentType: response.headers.get("content-type") };
}

/** GET over a unix socket, as `netclaim probe` asks. */
function getOnSocket(socketPath: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ socketPath, path, agent: false }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        body += chunk;
      });
      response.on("end", () => {
        resolve({ status: response.statusCode ?? 0, body, contentType: response.headers["content-type"] ?? null });
      });
    });
    request.on("error", reject);
    request.end();
  });
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    (err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    },
  );
}

/** What a killed agent leaves: its socket file, with no one listening. */
async function leaveStaleSocket(socketPath: string): Promise<void> {
  const script = `require("node:net").createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, "SIGKILL"))`;
  await promisify(execFile)(process.execPath, ["-e", script]).catch(() => undefined);
  assert.ok((await lstat(socketPath)).isSocket(), "the killed listener left its socket");
}

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** An engine thread that answers, or hangs once told to. */
class FakeEngine {
  stuck = false;

  batchAcross(): Promise<unknown[]> {
    return this.stuck ? new Promise(() => undefined) : Promise.resolve([]);
  }
}

/** An attacher whose attaches and detaches succeed, or fail once told to. */
function fakeAttacher(fail: { done: boolean; detach: boolean }): Attacher {
  const attached: AttachResult[] = [];
  return {
    begin: () => Promise.resolve({ done: fail.done ? Promise.reject(new Error("device vanished")) : Promise.resolve(attached) }),
    attach: () => Promise.resolve(attached),
    detach: () => (fail.detach ? Promise.reject(new Error("netns gone")) : Promise.resolve(new Map())),
    recover: () => Promise.resolve(new Map()),
    retarget: () => Promise.resolve(new Map()),
    attachments: () => Promise.resolve([]),
    attached: () => Promise.resolve([]),
  };
}

describe("HttpEndpoints", () => {
  const started: HttpEndpoints[] = [];

  const dirs: string[] = [];

  async function serve(options: {
    readiness?: Readiness;
    liveness?: readonly LivenessCheck[];
    metrics?: AgentMetrics;
    /** null: no port. */
    port?: number | null;
    socketPath?: string;
  }): Promise<HttpEndpoints> {
    const readiness = options.readiness ?? new Readiness();
    const endpoints = await HttpEndpoints.start({
      address: "127.0.0.1",
      port: options.port === null ? undefined : (options.port ?? 0),
      socketPath: options.socketPath,
      notReady: () => readiness.missing(),
      notAlive: () => unanswered(options.liveness ?? [], 100),
      metrics: (options.metrics ?? new AgentMetrics()).registry,
      logger,
      portRetryMs: 20,
    });
    started.push(endpoints);
    return endpoints;
  }

  /** An agent's runtimeDir and pod UID, and the probe socket they give. */
  async function runtimeDir(podUID?: string): Promise<{ dir: string; socketPath: string }> {
    const dir = await mkdtemp(join(tmpdir(), "netclaim-http-"));
    dirs.push(dir);
    return { dir, socketPath: probeSocketPath({ runtimeDir: dir, kubelet: { podUID } }) };
  }

  afterEach(async () => {
    await Promise.all(started.splice(0).map((endpoints) => endpoints.close()));
  });

  after(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("is ready only while registered, connected to NRI and published, and names what is missing", async () => {
    const readiness = new Readiness();
    const endpoints = await serve({ readiness });
    // Nothing tracked yet: the agent is still starting.
    assert.deepEqual(await get(endpoints, "/readyz"), {
      status: 503,
      body: "not ready: registered with the kubelet, connected to NRI, ResourceSlices published\n",
      contentType: "text/plain; charset=utf-8",
    });

    let published = false;
    readiness.track("ResourceSlices published", () => published);
    published = true;
    assert.equal((await get(endpoints, "/readyz")).body, "not ready: registered with the kubelet, connected to NRI\n");

    let nri: NriConnectionState = "disconnected";
    readiness.track("connected to NRI", () => nri === "connected");
    nri = "connected";
    assert.equal((await get(endpoints, "/readyz")).body, "not ready: registered with the kubelet\n");

    let registered = false;
    readiness.track("registered with the kubelet", () => registered);
    assert.equal((await get(endpoints, "/readyz")).status, 503);
    registered = true;
    assert.deepEqual(await get(endpoints, "/readyz"), { status: 200, body: "ok\n", contentType: "text/plain; charset=utf-8" });

    nri = "disconnected";
    assert.deepEqual(await get(endpoints, "/readyz"), { status: 503, body: "not ready: connected to NRI\n", contentType: "text/plain; charset=utf-8" });
    nri = "connected";
    assert.equal((await get(endpoints, "/readyz")).status, 200);
  });

  it("is alive while the engine thread answers, and names it when it does not", async () => {
    const engine = new FakeEngine();
    const endpoints = await serve({ liveness: [{ name: "engine thread", ask: () => engine.batchAcross() }] });
    assert.deepEqual(await get(endpoints, "/livez"), { status: 200, body: "ok\n", contentType: "text/plain; charset=utf-8" });

    engine.stuck = true;
    assert.deepEqual(await get(endpoints, "/livez"), {
      status: 503,
      body: "not alive: engine thread: no answer within 100 ms\n",
      contentType: "text/plain; charset=utf-8",
    });

    engine.stuck = false;
    assert.equal((await get(endpoints, "/livez")).status, 200);
  });

  it("counts a check that fails as not alive", async () => {
    const endpoints = await serve({ liveness: [{ name: "engine thread", ask: () => Promise.reject(new Error("the engine thread stopped")) }] });
    assert.deepEqual(await get(endpoints, "/livez"), {
      status: 503,
      body: "not alive: engine thread: failed: the engine thread stopped\n",
      contentType: "text/plain; charset=utf-8",
    });
  });

  it("serves every documented metric after the events it counts", async () => {
    const metrics = new AgentMetrics();
    const endpoints = await serve({ metrics });

    const fail = { done: false, detach: false };
    const engine = metrics.instrument(fakeAttacher(fail));
    await (await engine.begin([])).done;
    fail.done = true;
    await assert.rejects((await engine.begin([])).done, /device vanished/);
    await engine.detach(["claim/dev"]);
    fail.detach = true;
    await assert.rejects(engine.detach(["claim/dev"]), /netns gone/);
    metrics.dra.observe("prepare", "success", 0.2);
    metrics.dra.observe("unprepare", "failed", 0.1);
    metrics.kubeRequestFailed(new KubeApiError("KUBE_API", { method: "PUT", path: "/apis/x", status: 409, reason: "Conflict", message: "changed" }));
    metrics.kubeRequestFailed(new KubeApiError("KUBE_TRANSPORT", { method: "GET", path: "/api/v1/nodes/n", status: 0, reason: "", message: "ECONNREFUSED" }));
    metrics.trackNri(() => "connected");
    metrics.trackDevices({ published: () => 4, prepared: () => Promise.resolve(2), attached: () => 1 });
    const loopBusy = EventLoopBusy.start();
    metrics.trackEventLoop(loopBusy);
    metrics.trackThreadHeap("engine", () => Promise.resolve({ used_heap_size: 3_000_000, total_heap_size: 5_000_000 }));
    metrics.trackThreadHeap("link-events", () => Promise.resolve({ used_heap_size: 1_000_000, total_heap_size: 2_000_000 }));
    burnCpu(30);

    const answer = await get(endpoints, "/metrics");
    loopBusy.stop();
    assert.equal(answer.status, 200);
    assert.match(answer.contentType ?? "", /^text\/plain; version=0\.0\.4/);
    const lines = new Set(answer.body.split("\n"));
    const expected = [
      'netclaim_engine_operations_total{operation="attach",status="success"} 1',
      'netclaim_engine_operations_total{operation="attach",status="failed"} 1',
      'netclaim_engine_operations_total{operation="detach",status="success"} 1',
      'netclaim_engine_operations_total{operation="detach",status="failed"} 1',
      'netclaim_engine_operation_seconds_count{operation="attach"} 2',
      'netclaim_engine_operation_seconds_count{operation="detach"} 2',
      'netclaim_dra_claim_operations_total{operation="prepare",status="success"} 1',
      'netclaim_dra_claim_operations_total{operation="unprepare",status="failed"} 1',
      'netclaim_dra_claim_operation_seconds_count{operation="prepare"} 1',
      'netclaim_kube_api_request_errors_total{method="PUT",code="409"} 1',
      'netclaim_kube_api_request_errors_total{method="GET",code="transport"} 1',
      'netclaim_nri_connection_state{state="connected"} 1',
      'netclaim_nri_connection_state{state="disconnected"} 0',
      'netclaim_nri_connection_state{state="closed"} 0',
      "netclaim_devices_published 4",
      "netclaim_devices_prepared 2",
      "netclaim_devices_attached 1",
      'netclaim_thread_heap_bytes{thread="engine",kind="used"} 3000000',
      'netclaim_thread_heap_bytes{thread="engine",kind="total"} 5000000',
      'netclaim_thread_heap_bytes{thread="link-events",kind="used"} 1000000',
      'netclaim_thread_heap_bytes{thread="link-events",kind="total"} 2000000',
    ];
    for (const line of expected) assert.ok(lines.has(line), `missing "${line}" in\n${answer.body}`);
    const rss = /^netclaim_process_resident_memory_bytes (\d+)$/m.exec(answer.body);
    assert.ok(Number(rss?.[1]) > 0, "the process's resident memory");
    assert.match(answer.body, /^netclaim_nodejs_eventloop_lag_p99_seconds \d/m, "the event loop's delay");
    const busy = /^netclaim_event_loop_busy_max_seconds (\S+)$/m.exec(answer.body);
    assert.ok(Number(busy?.[1]) >= 0.03, `the 30 ms of CPU the test held the event loop for, in\n${answer.body}`);
  });

  it("reports no devices and a disconnected NRI before the parts are tracked", async () => {
    const endpoints = await serve({});
    const body = (await get(endpoints, "/metrics")).body;
    assert.match(body, /^netclaim_devices_published 0$/m);
    assert.match(body, /^netclaim_event_loop_busy_max_seconds 0$/m);
    assert.match(body, /^netclaim_thread_heap_bytes\{thread="engine",kind="total"\} 0$/m);
    assert.match(body, /^netclaim_nri_connection_state\{state="disconnected"\} 1$/m);
  });

  it("answers only GET and HEAD, and only its three paths", async () => {
    const endpoints = await serve({});
    assert.equal((await get(endpoints, "/readyz", "POST")).status, 405);
    assert.equal((await get(endpoints, "/readyz", "HEAD")).status, 503);
    assert.equal((await get(endpoints, "/healthz")).status, 404);
    assert.equal((await get(endpoints, "/readyz?verbose")).status, 503);
  });

  it("waits for a port another process holds and takes it when it is let go", async () => {
    const first = await serve({});
    const port = first.port;
    assert.ok(port !== undefined);
    const second = await serve({ port });
    assert.equal(second.port, undefined);
    await first.close();
    await until(() => second.port !== undefined);
    assert.equal(second.port, port);
    assert.equal((await get(second, "/livez")).status, 200);
  });

  it("answers /readyz and /livez on its probe socket with the port off, with the same handler", async () => {
    const { dir, socketPath } = await runtimeDir("0f4c6a1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b");
    assert.equal(socketPath, join(dir, "probes", "0f4c6a1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b.sock"));
    const readiness = new Readiness();
    const engine = new FakeEngine();
    const endpoints = await serve({ readiness, liveness: [{ name: "engine thread", ask: () => engine.batchAcross() }], port: null, socketPath });
    assert.equal(endpoints.port, undefined);
    assert.ok((await lstat(socketPath)).isSocket(), "the probes directory is made and the socket is there");

    assert.deepEqual(await getOnSocket(socketPath, "/readyz"), {
      status: 503,
      body: "not ready: registered with the kubelet, connected to NRI, ResourceSlices published\n",
      contentType: "text/plain; charset=utf-8",
    });
    for (const condition of READINESS_CONDITIONS) readiness.track(condition, () => true);
    assert.deepEqual(await getOnSocket(socketPath, "/readyz"), { status: 200, body: "ok\n", contentType: "text/plain; charset=utf-8" });

    assert.equal((await getOnSocket(socketPath, "/livez")).status, 200);
    engine.stuck = true;
    assert.deepEqual(await getOnSocket(socketPath, "/livez"), {
      status: 503,
      body: "not alive: engine thread: no answer within 100 ms\n",
      contentType: "text/plain; charset=utf-8",
    });
    assert.equal((await getOnSocket(socketPath, "/readyz")).status, 200);
    assert.equal((await getOnSocket(socketPath, "/healthz")).status, 404);
  });

  it("names the socket agent.sock without a pod UID", async () => {
    const { dir, socketPath } = await runtimeDir();
    assert.equal(socketPath, join(dir, "probes", "agent.sock"));
  });

  it("answers its own pod's probes on the socket while another agent holds the port", async () => {
    const old = await serve({ readiness: ready() });
    const port = old.port;
    assert.ok(port !== undefined);
    const { socketPath } = await runtimeDir("new-pod");
    const replacement = await serve({ port, socketPath });
    assert.equal(replacement.port, undefined, "the old agent still holds the port");
    // The port answers for the old agent; the socket for the new one, still starting.
    assert.equal((await get(old, "/readyz")).status, 200);
    assert.equal((await getOnSocket(socketPath, "/readyz")).status, 503);
    await old.close();
    await until(() => replacement.port !== undefined);
    assert.equal((await get(replacement, "/readyz")).status, 503);
    assert.equal((await getOnSocket(socketPath, "/metrics")).status, 200);
  });

  it("replaces the socket a killed agent of the same pod left, and removes its own on close", async () => {
    const { socketPath } = await runtimeDir("restarted-pod");
    await mkdir(join(socketPath, ".."), { recursive: true });
    await leaveStaleSocket(socketPath);
    await assert.rejects(getOnSocket(socketPath, "/readyz"), { code: "ECONNREFUSED" });

    const endpoints = await serve({ readiness: ready(), port: null, socketPath });
    assert.equal((await getOnSocket(socketPath, "/readyz")).status, 200);
    await endpoints.close();
    assert.equal(await exists(socketPath), false, "the socket is gone once closed");
    await assert.rejects(getOnSocket(socketPath, "/readyz"), { code: "ENOENT" });
  });

  it("removes the probe sockets of other pods' killed agents, and keeps a live agent's", async () => {
    const { dir, socketPath: own } = await runtimeDir("new-pod");
    const killed = probeSocketPath({ runtimeDir: dir, kubelet: { podUID: "killed-pod" } });
    const live = probeSocketPath({ runtimeDir: dir, kubelet: { podUID: "old-pod" } });
    await mkdir(join(killed, ".."), { recursive: true });
    await leaveStaleSocket(killed);
    const old = await serve({ port: null, socketPath: live });
    const endpoints = await serve({ port: null, socketPath: own });
    assert.equal(await exists(killed), false, "the killed agent's socket is swept");
    assert.equal((await getOnSocket(live, "/livez")).status, 200, "the live agent's socket is kept");
    await endpoints.close();
    await old.close();
  });

  it("leaves a file that is not a socket alone and fails to start", async () => {
    const { socketPath } = await runtimeDir("someone-else");
    await mkdir(join(socketPath, ".."), { recursive: true });
    await writeFile(socketPath, "not ours\n");
    await assert.rejects(serve({ port: null, socketPath }), (err: unknown) => {
      assert.ok(err instanceof HttpEndpointsError);
      assert.match(err.message, /Cannot serve \/readyz, \/livez and \/metrics on .*someone-else\.sock: .*EADDRINUSE/);
      return true;
    });
    assert.equal(await exists(socketPath), true, "the file stays");
  });
});

/** A Readiness whose every condition holds. */
function ready(): Readiness {
  const readiness = new Readiness();
  for (const condition of READINESS_CONDITIONS) readiness.track(condition, () => true);
  return readiness;
}
