import assert from "node:assert/strict";
import { Duplex, PassThrough, Writable } from "node:stream";
import { describe, it } from "node:test";
import { ConnId, GO_READ_BUFFER, TrunkMux } from "./mux.ts";
import { MessageType } from "./ttrpc-frame.ts";

/** A socket stand-in that records what the mux writes. */
function recordingSocket(): { socket: Duplex; written: Buffer[] } {
  const written: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      written.push(chunk);
      callback();
    },
  });
  return { socket: Duplex.from({ readable: new PassThrough(), writable: sink }), written };
}

/** Splits the trunk byte stream into frames. */
function trunkFrames(bytes: Buffer): { connId: number; payload: Buffer }[] {
  const frames: { connId: number; payload: Buffer }[] = [];
  for (let at = 0; at < bytes.length; ) {
    const length = bytes.readUInt32BE(at + 4);
    frames.push({ connId: bytes.readUInt32BE(at), payload: bytes.subarray(at + 8, at + 8 + length) });
    at += 8 + length;
  }
  return frames;
}

describe("TrunkMux", () => {
  for (const [dataLength, expected] of [
    [0, [[2, 10]]],
    [4086, [[2, 4096]]],
    [4087, [[2, 4096], [2, 1]]],
    [100_000, [[2, 4096], [2, 95_914]]],
  ] as const) {
    it(`writes a ttrpc message of ${dataLength + 10} bytes as the Go writer does: first ${GO_READ_BUFFER} bytes, then the rest`, async () => {
      const { socket, written } = recordingSocket();
      const mux = new TrunkMux(socket);
      mux.writeMessage(ConnId.RUNTIME_SERVICE, { streamId: 1, type: MessageType.REQUEST, flags: 0 }, Buffer.alloc(dataLength, 0xab));
      await new Promise((resolve) => setImmediate(resolve));
      const frames = trunkFrames(Buffer.concat(written));
      assert.deepEqual(frames.map((f) => [f.connId, f.payload.length]), expected);
      const ttrpc = Buffer.concat(frames.map((f) => f.payload));
      assert.equal(ttrpc.readUInt32BE(0), dataLength);
      assert.ok(ttrpc.subarray(10).every((b) => b === 0xab));
      mux.close();
    });
  }

  it("routes payloads by connection, drops unopened connections, and fails on a zero connection ID", () => {
    const socket = new PassThrough();
    const mux = new TrunkMux(socket);
    const got: string[] = [];
    mux.open(ConnId.PLUGIN_SERVICE, { onData: (c) => got.push(`1:${c.toString()}`) });
    const frame = (id: number, text: string): Buffer => {
      const header = Buffer.alloc(8);
      header.writeUInt32BE(id, 0);
      header.writeUInt32BE(text.length, 4);
      return Buffer.concat([header, Buffer.from(text)]);
    };
    socket.write(Buffer.concat([frame(1, "a"), frame(2, "dropped"), frame(1, "b")]));
    assert.deepEqual(got, ["1:a", "1:b"]);
    socket.write(frame(0, "x"));
    assert.equal(mux.error?.code, "TTRPC_PROTOCOL");
    assert.match(mux.error.message, /connection 0/);
  });

  it("keeps the first error and closes once", async () => {
    const socket = new PassThrough();
    const mux = new TrunkMux(socket);
    mux.close();
    mux.close();
    socket.destroy(new Error("late"));
    const err = await mux.closed;
    assert.equal(err.message, "NRI connection closed");
    assert.throws(() => {
      mux.writeMessage(ConnId.RUNTIME_SERVICE, { streamId: 1, type: MessageType.REQUEST, flags: 0 }, Buffer.alloc(0));
    }, { message: "NRI connection closed" });
  });
});
