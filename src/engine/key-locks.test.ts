import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KeyLocks } from "./key-locks.ts";

describe("KeyLocks", () => {
  it("acquire() waits for every key it shares with a holder, and not for others", async () => {
    const locks = new KeyLocks();
    const releaseA = await locks.acquire(["a"]);
    const order: string[] = [];
    const both = locks.acquire(["a", "b"]).then((release) => {
      order.push("a+b");
      return release;
    });
    const c = locks.acquire(["c"]).then((release) => {
      order.push("c");
      return release;
    });
    (await c)();
    assert.deepEqual(order, ["c"], "c is free, a+b waits for a");
    releaseA();
    (await both)();
    assert.deepEqual(order, ["c", "a+b"]);
  });

  it("tryAcquire() never waits: undefined while the key is held, the lock once it is released", async () => {
    const locks = new KeyLocks();
    const release = await locks.acquire(["k"]);
    assert.equal(locks.tryAcquire("k"), undefined);
    release();
    const again = locks.tryAcquire("k");
    assert.ok(again !== undefined);
    const waiting = locks.acquire(["k"]);
    again();
    (await waiting)();
  });
});
