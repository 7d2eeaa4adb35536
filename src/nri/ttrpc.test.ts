import assert from "node:assert/strict";
import { duplexPair, PassThrough, Duplex, Writable } from "node:stream";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { NriHandlerError, TtrpcStatusError } from "./errors.ts";
import { ConnId, TrunkMux } from "./mux.ts";
import { StatusCode } from "./status.ts";
import { TtrpcClient } from "./ttrpc-client.ts";
import { TtrpcServer, type UnaryHandler } from "./ttrpc-server.ts";

/** A client on one end of an in-memory socket pair and a server on the other. */
function pair(methods: Record<string, UnaryHandler>): { client: TtrpcClient; clientMux: TrunkMux; serverMux: TrunkMux } {
  const [a, b] = duplexPair();
  const clientMux = new TrunkMux(a);
  const serverMux = new TrunkMux(b);
  new TtrpcServer(serverMux, ConnId.RUNTIME_SERVICE, new Map([["svc", new Map(Object.entries(methods))]]));
  return { client: new TtrpcClient(clientMux, ConnId.RUNTIME_SERVICE), clientMux, serverMux };
}

const text = (s: string): Uint8Array => Buffer.from(s);

describe("ttrpc client and server", () => {
  it("matches concurrent replies that finish out of order to their calls", async () => {
    const { client, clientMux } = pair({
      Echo: async (payload) => {
        const s = Buffer.from(payload).toString();
        await sleep(s === "slow" ? 30 : 0);
        return text(`echo ${s}`);
      },
    });
    const order: string[] = [];
    const calls = ["slow", "fast"].map(async (s) => {
      const reply = Buffer.from(await client.call("svc", "Echo", text(s))).toString();
      order.push(reply);
      return reply;
    });
    assert.deepEqual(await Promise.all(calls), ["echo slow", "echo fast"]);
    assert.deepEqual(order, ["echo fast", "echo slow"]);
    clientMux.close();
  });

  it("carries a handler's chosen status, UNKNOWN for other errors and UNIMPLEMENTED for unknown methods", async () => {
    const { client, clientMux } = pair({
      Refuse: () => Promise.reject(new NriHandlerError(StatusCode.FAILED_PRECONDITION, "not ready")),
      Crash: () => Promise.reject(new Error("boom")),
    });
    await assert.rejects(client.call("svc", "Refuse", text("")), (err: unknown) => err instanceof TtrpcStatusError && err.status === StatusCode.FAILED_PRECONDITION && err.message === "Refuse (stream 1): FAILED_PRECONDITION: not ready");
    await assert.rejects(client.call("svc", "Crash", text("")), { status: StatusCode.UNKNOWN, message: "Crash (stream 3): UNKNOWN: boom" });
    await assert.rejects(client.call("svc", "Missing", text("")), { status: StatusCode.UNIMPLEMENTED, message: "Missing (stream 5): UNIMPLEMENTED: method Missing" });
    await assert.rejects(client.call("other", "X", text("")), { status: StatusCode.UNIMPLEMENTED, message: "X (stream 7): UNIMPLEMENTED: service other" });
    clientMux.close();
  });

  it("passes the caller's deadline to the handler as an abort signal and fails the call at its timeout", async () => {
    let aborted: Promise<unknown> | undefined;
    const { client, clientMux } = pair({
      Hang: (_payload, call) => {
        aborted = new Promise((resolve) => { call.signal.addEventListener("abort", () => {
          resolve(call.signal.reason);
        }); });
        return new Promise(() => {});
      },
    });
    await assert.rejects(client.call("svc", "Hang", text(""), { timeoutMs: 20 }), { code: "TTRPC_TIMEOUT", message: "Hang (stream 1): no reply within 20 ms" });
    assert.ok(aborted);
    assert.match(String(await aborted), /Hang: deadline of 20 ms exceeded/);
    clientMux.close();
  });

  it("fails every pending call when the connection ends, and aborts the server's handlers", async () => {
    let serverSignal: AbortSignal | undefined;
    const { client, serverMux } = pair({
      Hang: (_payload, call) => {
        serverSignal = call.signal;
        return new Promise(() => {});
      },
    });
    const pending = client.call("svc", "Hang", text(""));
    while (serverSignal === undefined) await sleep(1);
    serverMux.close();
    await assert.rejects(pending, { code: "TTRPC_CLOSED" });
    assert.equal(serverSignal.aborted, true);
    await assert.rejects(client.call("svc", "Hang", text("")), { code: "TTRPC_CLOSED" });
  });

  it("sends the spec's worked RegisterPlugin example byte for byte", async () => {
    const written: Buffer[] = [];
    const socket = Duplex.from({ readable: new PassThrough(), writable: new Writable({ write(chunk: Buffer, _e, cb) { written.push(chunk); cb(); } }) });
    const mux = new TrunkMux(socket);
    const register = Buffer.concat([Buffer.from("0a06", "hex"), text("tsplug"), Buffer.from("1202", "hex"), text("10")]);
    void new TtrpcClient(mux, ConnId.RUNTIME_SERVICE).call("nri.pkg.api.v1alpha1.Runtime", "RegisterPlugin", register, { timeoutMs: 5000 }).catch(() => undefined);
    await sleep(1);
    const expected = Buffer.concat([
      Buffer.from("000000020000004c" + "00000042000000010100", "hex"),
      Buffer.from("0a1c", "hex"), text("nri.pkg.api.v1alpha1.Runtime"),
      Buffer.from("120e", "hex"), text("RegisterPlugin"),
      Buffer.from("1a0c", "hex"), register,
      Buffer.from("2080e497d012", "hex"),
    ]);
    assert.equal(Buffer.concat(written).toString("hex"), expected.toString("hex"));
    mux.close();
  });
});
