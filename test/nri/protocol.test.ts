/**
 * What the plugin does with input no well-behaved runtime sends: each bad
 * request gets a clear status on its own stream, and a corrupt byte stream
 * ends only that connection (the plugin reconnects); nothing crashes.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { ConfigureRequestSchema } from "../../src/gen/nri/api_pb.js";
import type { NriPlugin } from "../../src/nri/index.ts";
import { StatusCode } from "../../src/nri/status.ts";
import { MESSAGE_LENGTH_MAX, MessageType } from "../../src/nri/ttrpc-frame.ts";
import { RawRuntime, request } from "./raw-runtime.ts";
import { recordingPlugin, type Recording } from "./recording-plugin.ts";
import { removeDir, shortTempDir } from "./runtime-peer.ts";

const PLUGIN = "nri.pkg.api.v1alpha1.Plugin";

describe("NRI plugin protocol robustness", () => {
  let dir: string;
  let runtime: RawRuntime;
  let plugin: NriPlugin;
  let recording: Recording;

  beforeEach(async () => {
    dir = shortTempDir();
    runtime = await RawRuntime.listen(`${dir}/nri.sock`);
    ({ plugin, recording } = recordingPlugin(`${dir}/nri.sock`));
    plugin.start();
  });
  afterEach(async () => {
    await plugin.close();
    await runtime.close();
    removeDir(dir);
  });

  it("answers unknown methods and services with UNIMPLEMENTED", async () => {
    const conn = await runtime.connection(1);
    conn.writeFrame(1, MessageType.REQUEST, request(PLUGIN, "UpdatePodSandbox"));
    conn.writeFrame(3, MessageType.REQUEST, request("example.Nope", "Configure"));
    const method = (await conn.answerFor(1)).status;
    assert.equal(method?.code, StatusCode.UNIMPLEMENTED);
    assert.equal(method.message, "method UpdatePodSandbox");
    const service = (await conn.answerFor(3)).status;
    assert.equal(service?.code, StatusCode.UNIMPLEMENTED);
    assert.equal(service.message, "service example.Nope");
  });

  it("answers a truncated protobuf payload with INVALID_ARGUMENT naming the method", async () => {
    const conn = await runtime.connection(1);
    const configure = toBinary(ConfigureRequestSchema, create(ConfigureRequestSchema, { runtimeName: "containerd", runtimeVersion: "v2.1.0" }));
    conn.writeFrame(1, MessageType.REQUEST, request(PLUGIN, "Configure", configure.subarray(0, configure.length - 3)));
    const answer = await conn.answerFor(1);
    assert.equal(answer.status?.code, StatusCode.INVALID_ARGUMENT);
    assert.match(answer.status.message, /^Configure: cannot decode nri\.pkg\.api\.v1alpha1\.ConfigureRequest: /);
  });

  it("answers a malformed request envelope, an even stream and a reused stream with INVALID_ARGUMENT", async () => {
    const conn = await runtime.connection(1);
    conn.writeFrame(1, MessageType.REQUEST, Buffer.from([0x0a, 0x7f, 0x41]));
    conn.writeFrame(4, MessageType.REQUEST, request(PLUGIN, "Shutdown"));
    conn.writeFrame(5, MessageType.REQUEST, request(PLUGIN, "Shutdown"));
    conn.writeFrame(5, MessageType.REQUEST, request(PLUGIN, "Shutdown"));
    assert.equal((await conn.answerFor(1)).status?.code, StatusCode.INVALID_ARGUMENT);
    assert.match((await conn.answerFor(1)).status?.message ?? "", /^unmarshal request error: /);
    assert.equal((await conn.answerFor(4)).status?.message, "StreamID must be odd for client initiated streams");
    await conn.answerFor(5);
    while (conn.answers.filter((a) => a.header.streamId === 5).length < 2) await new Promise((r) => setTimeout(r, 10));
    // Replies may come in any order: the refusal is immediate, the served Shutdown is not.
    assert.deepEqual(
      conn.answers.filter((a) => a.header.streamId === 5).map((a) => a.response.status?.message ?? "served").sort(),
      ["StreamID cannot be re-used and must increment", "served"],
    );
  });

  it("skips a message over 4 MiB with RESOURCE_EXHAUSTED on its stream and keeps serving", async () => {
    const conn = await runtime.connection(1);
    conn.writeFrame(1, MessageType.REQUEST, Buffer.alloc(MESSAGE_LENGTH_MAX + 1));
    conn.writeFrame(3, MessageType.REQUEST, request(PLUGIN, "NoSuchMethod"));
    const oversized = await conn.answerFor(1);
    assert.equal(oversized.status?.code, StatusCode.RESOURCE_EXHAUSTED);
    assert.equal(oversized.status.message, `message length ${MESSAGE_LENGTH_MAX + 1} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`);
    assert.equal((await conn.answerFor(3)).status?.code, StatusCode.UNIMPLEMENTED);
  });

  it("drops a connection whose ttrpc stream is out of sync, and connects again", async () => {
    const conn = await runtime.connection(1);
    conn.writeFrame(1, 0x7e, Buffer.from("not a ttrpc message type"));
    assert.equal((await conn.mux.closed).code, "TTRPC_CLOSED");
    const again = await runtime.connection(2);
    again.writeFrame(1, MessageType.REQUEST, request(PLUGIN, "Nope"));
    assert.equal((await again.answerFor(1)).status?.code, StatusCode.UNIMPLEMENTED);
  });

  it("drops a connection as soon as a trunk frame claims more than the size cap, before any of its payload, and connects again", async () => {
    const conn = await runtime.connection(1);
    const header = Buffer.alloc(8);
    header.writeUInt32BE(1, 0);
    header.writeUInt32BE(0xffffffff, 4);
    conn.socket.write(header);
    // A plugin that waited for the 4 GiB it was promised would keep the connection open.
    const deadline = performance.now() + 1000;
    const down = () => recording.logs.find((l) => l.message === "NRI connection to the runtime is down");
    while (down() === undefined && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    const error = down()?.fields.error;
    assert.match(typeof error === "string" ? error : "still connected a second after the header", /Cannot demultiplex NRI trunk frame: connection 1, length 4294967295 \(max 4194314\)/);
    await conn.mux.closed;
    await runtime.connection(2);
    assert.notEqual(plugin.state, "closed");
  });

  it("survives a second of random frames and garbage, answering or reconnecting, and still serves afterwards", async () => {
    const until = Date.now() + 1000;
    let streamId = 1;
    while (Date.now() < until) {
      const conn = await runtime.connection(Math.max(1, runtime.connections.length));
      if (conn.mux.error) {
        await runtime.connection(runtime.connections.length + 1);
        continue;
      }
      const kind = Math.random();
      if (kind < 0.6) {
        // A well-framed request with a random envelope or payload.
        const body = Buffer.from(Array.from({ length: Math.floor(Math.random() * 300) }, () => Math.floor(Math.random() * 256)));
        conn.writeFrame(streamId, MessageType.REQUEST, Math.random() < 0.5 ? body : request(PLUGIN, ["Configure", "Synchronize", "RunPodSandbox", "StateChange", "CreateContainer"][Math.floor(Math.random() * 5)]!, body));
        streamId += 2;
      } else {
        // Raw bytes straight onto the trunk: usually a desync that ends this connection.
        conn.socket.write(Buffer.from(Array.from({ length: 1 + Math.floor(Math.random() * 64) }, () => Math.floor(Math.random() * 256))));
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    // The last connection may hold half a random frame: probe on a fresh one.
    const count = runtime.connections.length;
    runtime.connections[count - 1]!.socket.destroy();
    const fresh = await runtime.connection(count + 1);
    fresh.writeFrame(1, MessageType.REQUEST, request(PLUGIN, "Nope"));
    assert.equal((await fresh.answerFor(1)).status?.code, StatusCode.UNIMPLEMENTED);
    assert.notEqual(plugin.state, "closed");
  });
});
