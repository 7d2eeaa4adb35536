import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeFrameHeader, encodeFrame, FrameParser, MESSAGE_LENGTH_MAX, MessageType } from "./ttrpc-frame.ts";

describe("ttrpc frame codec", () => {
  it("encodes the 10-byte big-endian header", () => {
    const frame = encodeFrame(0x01020304, MessageType.RESPONSE, Buffer.from("hi"));
    assert.equal(frame.toString("hex"), "00000002" + "01020304" + "02" + "00" + Buffer.from("hi").toString("hex"));
    assert.deepEqual(decodeFrameHeader(frame), { length: 2, streamId: 0x01020304, type: 2, flags: 0 });
  });

  it("decodeFrameHeader rejects a short header", () => {
    assert.throws(() => decodeFrameHeader(Buffer.alloc(9)), { name: "RangeError", message: "Cannot decode ttrpc header: 9 of 10 bytes" });
  });

  it("FrameParser waits for whole frames, including empty ones", () => {
    const parser = new FrameParser();
    const bytes = Buffer.concat([encodeFrame(1, MessageType.REQUEST, Buffer.from("abc")), encodeFrame(3, MessageType.RESPONSE, Buffer.alloc(0))]);
    assert.deepEqual(parser.push(bytes.subarray(0, 12)), []);
    const frames = parser.push(bytes.subarray(12));
    assert.deepEqual(
      frames.map((f) => (f.kind === "message" ? [f.header.streamId, f.data.toString()] : ["oversized"])),
      [[1, "abc"], [3, ""]],
    );
  });

  it("FrameParser skips a message over 4 MiB and reports it for its stream, then parses on", () => {
    const parser = new FrameParser();
    const header = Buffer.alloc(10);
    header.writeUInt32BE(MESSAGE_LENGTH_MAX + 5, 0);
    header.writeUInt32BE(7, 4);
    header.writeUInt8(MessageType.REQUEST, 8);
    const first = parser.push(header);
    assert.deepEqual(first, [{ kind: "oversized", header: { length: MESSAGE_LENGTH_MAX + 5, streamId: 7, type: 1, flags: 0 } }]);
    assert.deepEqual(parser.push(Buffer.alloc(MESSAGE_LENGTH_MAX)), [], "the body is dropped as it arrives");
    const next = parser.push(Buffer.concat([Buffer.alloc(5), encodeFrame(9, MessageType.REQUEST, Buffer.from("z"))]));
    assert.equal(next.length, 1);
    assert.equal(next[0]?.header.streamId, 9);
  });

  it("FrameParser treats an unknown message type as a desync", () => {
    const frame = encodeFrame(1, MessageType.REQUEST, Buffer.alloc(0));
    frame.writeUInt8(9, 8);
    assert.throws(() => new FrameParser().push(frame), { code: "TTRPC_PROTOCOL", message: "Cannot parse ttrpc frame: unknown message type 9 on stream 1" });
  });
});
