import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseAttributes, splitMessages, Writer, type RawMessage } from "./codec.ts";
import { NetlinkError } from "./errors.ts";
import { LocalNetlink } from "./local.ts";
import { bytesToIp, bytesToMac, canonicalIp, ipToBytes, macToBytes, networkOf } from "./ip.ts";
import { decodeRdmaNetnsMode, encodeRdmaDumpDevices, encodeRdmaSetNetns, encodeRdmaSysGet } from "./rdma.ts";
import { decodeLink, encodeDumpLinks, encodeRoute, encodeSetLink, NLM_F, NLMSG, RTM } from "./rtnl.ts";
import { NetlinkSocket, type Exchange, type Transport } from "./socket.ts";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** A transport that answers every send with the given datagrams, in order. */
function scripted(replies: ((seq: number) => Uint8Array)[]): Transport {
  let seq = 0;
  return {
    send(data) {
      seq = new DataView(data.buffer, data.byteOffset).getUint32(8, true);
    },
    receive(buf) {
      const next = replies.shift();
      if (next === undefined) throw new Error("no more scripted replies");
      const d = next(seq);
      buf.set(d.subarray(0, Math.min(d.length, buf.length)));
      return d.length;
    },
    close() {
      // Nothing to release.
    },
  };
}

function errorReply(seq: number, errno: number, extAck?: string): Uint8Array {
  const w = new Writer().message(NLMSG.ERROR, extAck === undefined ? 0 : NLM_F.CAPPED | NLM_F.ACK_TLVS, seq).i32(-errno);
  w.u32(16).u16(16).u16(0).u32(seq).u32(0); // the echoed (capped) request header
  if (extAck !== undefined) w.attrString(1, extAck);
  return w.join().finish();
}

describe("netlink codec", () => {
  it("nests attributes with 4-byte alignment and patches every length", () => {
    const bytes = new Writer().message(16, 5, 9).u32(0).nest(18).attrString(1, "veth").join().attrU8(7, 1).join().finish();
    // 16-byte header, u32, nest 18 (NLA_F_NESTED) holding "veth\0" padded to 12, then a u8 padded to 8.
    assert.equal(hex(bytes), "2c000000100005000900000000000000" + "00000000" + "10001280" + "090001007665746800000000" + "0500070001000000");
    const [m] = splitMessages(bytes);
    assert.ok(m);
    assert.equal(m.type, 16);
    const attrs = parseAttributes(m.body.subarray(4));
    assert.equal(Buffer.from(attrs.get(18)!).toString("hex"), "090001007665746800000000");
    assert.deepEqual([...parseAttributes(m.body.subarray(4), new Set([7])).keys()], [7], "only the types asked for");
  });

  it("rejects an attribute whose length runs past the message, naming it", () => {
    const body = new Writer().attrU32(4, 1400).finish();
    new DataView(body.buffer, body.byteOffset).setUint16(0, 12, true);
    assert.throws(() => parseAttributes(body), /attribute 4 length 12 does not fit the 8 bytes left/);
  });

  it("reads through a Uint8Array view at a non-zero byteOffset", () => {
    const inner = new Writer().message(3, 2, 1).u32(0).join().finish();
    const backing = new Uint8Array(inner.length + 5);
    backing.set(inner, 5);
    const [m] = splitMessages(backing.subarray(5));
    assert.ok(m);
    assert.equal(m.type, 3);
    assert.equal(m.seq, 1);
  });

  it("rejects truncated messages and attributes as NETLINK_MALFORMED", () => {
    const bytes = new Writer().message(16, 0, 1).u32(0).join().finish();
    assert.throws(() => splitMessages(bytes.subarray(0, 18)), (e: unknown) => e instanceof NetlinkError && e.code === "NETLINK_MALFORMED");
    assert.throws(() => parseAttributes(Uint8Array.from([40, 0, 3, 0, 1, 2])), /attribute 3 length 40/);
    assert.throws(() => decodeLink(new Uint8Array(8)), /truncated ifi_flags/);
  });

  it("encodes a move+rename as one RTM_NEWLINK with IFLA_NET_NS_FD before IFLA_IFNAME", () => {
    const bytes = encodeSetLink(7, 12, { netnsFd: 30, name: "net1" });
    // ifinfomsg for ifindex 12, IFLA_NET_NS_FD (28) = 30, IFLA_IFNAME (3) = "net1\0".
    assert.equal(hex(bytes), "34000000100005000700000000000000" + "000000000c0000000000000000000000" + "08001c001e000000" + "090003006e65743100000000");
  });

  it("puts tables above 255 in RTA_TABLE with rtm_table = RT_TABLE_COMPAT", () => {
    const bytes = encodeRoute(1, "add", { family: 4, table: 1000, dst: "198.51.100.0", dstLength: 24, oif: 3 });
    const body = bytes.subarray(16);
    assert.equal(body[4], 252);
    const attrs = parseAttributes(body.subarray(12));
    assert.equal(new DataView(attrs.get(15)!.buffer, attrs.get(15)!.byteOffset).getUint32(0, true), 1000);
    assert.equal(bytesToIp(attrs.get(1)!), "198.51.100.0");
  });

  it("converts IP text to bytes and back canonically", () => {
    assert.equal(canonicalIp("fd00:0:0::0:1"), "fd00::1");
    assert.equal(bytesToIp(ipToBytes("::ffff:198.51.100.1")), "::ffff:c633:6401");
    assert.equal(networkOf("203.0.113.77", 25), "203.0.113.0");
    assert.equal(networkOf("fd00:1:2:3::9", 48), "fd00:1:2::");
  });

  it("converts MAC bytes to text and back, whatever the address length", () => {
    assert.equal(bytesToMac(macToBytes("02:0A:ff:00:10:01")), "02:0a:ff:00:10:01");
    const ipoib = Uint8Array.from({ length: 20 }, (_, i) => i * 13);
    assert.equal(bytesToMac(ipoib), Array.from(ipoib, (b) => b.toString(16).padStart(2, "0")).join(":"));
    assert.equal(bytesToMac(new Uint8Array(0)), "");
  });
});

describe("RDMA netlink messages, byte for byte against rdma_netlink.h", () => {
  it("RDMA_NLDEV_CMD_SET with RDMA_NLDEV_ATTR_DEV_INDEX (1) and RDMA_NLDEV_NET_NS_FD (68)", () => {
    // type = RDMA_NL_GET_TYPE(RDMA_NL_NLDEV=5, RDMA_NLDEV_CMD_SET=2) = 0x1402; flags REQUEST|ACK.
    assert.equal(hex(encodeRdmaSetNetns(1, 3, 7)), "20000000" + "0214" + "0500" + "01000000" + "00000000" + "0800010003000000" + "0800440007000000");
  });

  it("RDMA_NLDEV_CMD_SYS_GET (6) and the RDMA_NLDEV_CMD_GET (1) dump", () => {
    assert.equal(hex(encodeRdmaSysGet(2)), "10000000" + "0614" + "0500" + "02000000" + "00000000");
    assert.equal(hex(encodeRdmaDumpDevices(3)), "10000000" + "0114" + "0103" + "03000000" + "00000000");
  });

  it("reads RDMA_NLDEV_SYS_ATTR_NETNS_MODE (66): 0 is exclusive, 1 shared", () => {
    assert.equal(decodeRdmaNetnsMode(new Writer().attrU8(66, 0).finish()), "exclusive");
    assert.equal(decodeRdmaNetnsMode(new Writer().attrU8(66, 1).finish()), "shared");
    assert.throws(() => decodeRdmaNetnsMode(new Uint8Array(0)), /NETNS_MODE/);
  });
});

describe("netlink socket transactions", () => {
  const ctx = { request: "RTM_NEWLINK move", device: "eth9" };

  it("turns NLMSG_ERROR into a typed error with errno name, request, device and the kernel's message", () => {
    const socket = new NetlinkSocket(scripted([(seq) => errorReply(seq, 17, "Interface name exists")]));
    assert.throws(() => socket.request((seq) => encodeSetLink(seq, 4, { up: false }), ctx), (err: unknown) => {
      assert.ok(err instanceof NetlinkError);
      assert.equal(err.code, "NETLINK_ERRNO");
      assert.equal(err.errnoName, "EEXIST");
      assert.equal(err.request, "RTM_NEWLINK move");
      assert.equal(err.device, "eth9");
      assert.equal(err.kernelMessage, "Interface name exists");
      assert.match(err.message, /RTM_NEWLINK move \(device eth9\) failed with EEXIST: Interface name exists/);
      return true;
    });
  });

  it("skips replies to stale sequence numbers and returns on the ack", () => {
    const socket = new NetlinkSocket(scripted([(seq) => errorReply(seq - 1, 19), (seq) => errorReply(seq, 0)]));
    assert.deepEqual(socket.request((seq) => encodeSetLink(seq, 4, { up: true }), ctx), []);
  });

  it("reports a dump with NLM_F_DUMP_INTR as a retryable NETLINK_DUMP_INTERRUPTED", () => {
    const socket = new NetlinkSocket(scripted([(seq) => new Writer().message(NLMSG.DONE, NLM_F.MULTI | NLM_F.DUMP_INTR, seq).u32(0).join().finish()]));
    assert.throws(() => socket.dump((seq) => encodeRdmaSysGet(seq), { request: "RTM_GETLINK dump" }), (err: unknown) => {
      assert.ok(err instanceof NetlinkError);
      assert.equal(err.code, "NETLINK_DUMP_INTERRUPTED");
      assert.ok(err.retryable);
      return true;
    });
  });

  it("names the request and device when a reply is malformed or truncated", () => {
    const garbage = new NetlinkSocket(scripted([() => Uint8Array.from([200, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9])]));
    assert.throws(() => garbage.request((seq) => encodeSetLink(seq, 4, { up: true }), ctx), /RTM_NEWLINK move \(device eth9\): netlink message length 200/);
    const huge = new NetlinkSocket(scripted([() => new Uint8Array(70 * 1024)]));
    assert.throws(() => huge.request((seq) => encodeSetLink(seq, 4, { up: true }), ctx), /did not fit/);
  });
});

describe("netlink transactions of several requests", () => {
  /** A transport that records each datagram sent and answers it with the datagrams `answer` makes of its requests. */
  function answering(answer: (requests: RawMessage[]) => Uint8Array[]): Transport & { sent: Uint8Array[] } {
    const sent: Uint8Array[] = [];
    const queue: Uint8Array[] = [];
    return {
      sent,
      send(data) {
        sent.push(data);
        queue.push(...answer(splitMessages(data)));
      },
      receive(buf) {
        const next = queue.shift();
        if (next === undefined) throw new Error("nothing left to receive");
        buf.set(next);
        return next.length;
      },
      close() {
        // Nothing to release.
      },
    };
  }
  const seqOf = (requests: RawMessage[], i: number): number => requests[i]?.seq ?? -1;
  const setUp = (index: number): Exchange => ({ build: (seq) => encodeSetLink(seq, index, { up: true }), ctx: { request: "RTM_NEWLINK up", device: `ifindex ${index}` } });

  it("sends every request in one datagram and gives each its own outcome, the kernel's error included", () => {
    const transport = answering((requests) => requests.map((m, i) => errorReply(m.seq, i === 1 ? 101 : 0)));
    const outcomes = new NetlinkSocket(transport).transact([setUp(4), setUp(5), setUp(6)]);
    assert.equal(transport.sent.length, 1);
    const sent = splitMessages(transport.sent[0] ?? new Uint8Array());
    assert.equal(sent.length, 3);
    assert.equal(new Set(sent.map((m) => m.seq)).size, 3, "each request has its own sequence number");
    assert.deepEqual(outcomes.map((o) => o.ok), [true, false, true]);
    const failed = outcomes[1];
    assert.ok(failed !== undefined && !failed.ok);
    assert.equal(failed.error.errnoName, "ENETUNREACH");
    assert.equal(failed.error.device, "ifindex 5");
  });

  it("collects a dump's messages to its end, whatever replies to other requests come in between", () => {
    const link = (seq: number): Uint8Array => new Writer().message(RTM.NEWLINK, NLM_F.MULTI, seq).u32(0).u32(7).u32(0).u32(0).attrString(3, "net1").attrU32(4, 1400).join().finish();
    const done = (seq: number): Uint8Array => new Writer().message(NLMSG.DONE, NLM_F.MULTI, seq).u32(0).join().finish();
    // The dump's first part, the change's ack, then the dump's end.
    const transport = answering((requests) => [link(seqOf(requests, 0)), errorReply(seqOf(requests, 1), 0), done(seqOf(requests, 0))]);
    const outcomes = new NetlinkSocket(transport).transact([{ build: encodeDumpLinks, ctx: { request: "RTM_GETLINK dump" }, dump: true }, setUp(4)]);
    const [dump, change] = outcomes;
    assert.ok(dump?.ok === true);
    assert.deepEqual(dump.replies.map((m) => decodeLink(m.body).name), ["net1"]);
    assert.equal(dump.interrupted, false);
    assert.ok(change?.ok === true);
  });

  it("refuses a second dump in one datagram (the kernel would answer EBUSY)", () => {
    const socket = new NetlinkSocket(answering(() => []));
    const dump: Exchange = { build: encodeDumpLinks, ctx: { request: "RTM_GETLINK dump" }, dump: true };
    assert.throws(() => socket.transact([dump, dump]), /at most one dump/);
  });
});

describe("LocalNetlink", () => {
  it("refuses the main thread, which its blocking batches would stall", () => {
    assert.throws(() => new LocalNetlink(), /worker thread/);
  });
});
