import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NetlinkError } from "../netlink/index.ts";
import { StoreError } from "../store/index.ts";
import { EngineError } from "./errors.ts";
import { errorFromWire, errorToWire } from "./thread-protocol.ts";

/** What an error looks like on the other side of a postMessage. */
function acrossThreads(err: unknown): Error {
  return errorFromWire(structuredClone(errorToWire(err)));
}

describe("errors crossing to and from the engine's thread", () => {
  it("keeps an engine error's class, code, where and message, and its netlink cause", () => {
    const cause = new NetlinkError("NETLINK_ERRNO", "RTM_NEWROUTE failed with ENETUNREACH", { errno: 101, errnoName: "ENETUNREACH", device: "net1", opIndex: 3 });
    const sent = new EngineError("ENGINE_STEP_FAILED", { attachment: "claim-1:eth9", device: "eth9", step: "routes" }, cause.message, { cause });
    const got = acrossThreads(sent);
    assert.ok(got instanceof EngineError);
    assert.equal(got.code, "ENGINE_STEP_FAILED");
    assert.deepEqual([got.attachment, got.device, got.step, got.detail], ["claim-1:eth9", "eth9", "routes", cause.message]);
    assert.equal(got.message, sent.message);
    assert.ok(got.cause instanceof NetlinkError);
    assert.deepEqual(got.cause.toWire(), cause.toWire());
  });

  it("keeps a netlink error and a store error as themselves", () => {
    const netlink = acrossThreads(new NetlinkError("NETLINK_SYSCALL", "setns: EPERM", { errnoName: "EPERM" }));
    assert.ok(netlink instanceof NetlinkError);
    assert.equal(netlink.errnoName, "EPERM");
    const store = acrossThreads(new StoreError("STORE_CORRUPT", "/run/netclaim/attachments/x.json", "Cannot parse state record"));
    assert.ok(store instanceof StoreError);
    assert.deepEqual([store.code, store.file, store.message], ["STORE_CORRUPT", "/run/netclaim/attachments/x.json", "Cannot parse state record"]);
  });

  it("passes any other error on by its message", () => {
    const got = acrossThreads(new TypeError("EACCES: permission denied, mkdir '/run/netclaim'"));
    assert.equal(got.message, "EACCES: permission denied, mkdir '/run/netclaim'");
    assert.equal(acrossThreads("a string").message, "a string");
  });
});
