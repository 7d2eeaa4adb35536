import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ByteQueue } from "./byte-queue.ts";

describe("ByteQueue", () => {
  it("peeks and takes across chunk boundaries without losing order", () => {
    const q = new ByteQueue();
    q.push(Buffer.from([1, 2]));
    q.push(Buffer.from([]));
    q.push(Buffer.from([3, 4, 5]));
    assert.equal(q.length, 5);
    assert.deepEqual([...q.peek(3)], [1, 2, 3]);
    assert.equal(q.length, 5, "peek consumes nothing");
    assert.deepEqual([...q.take(1)], [1]);
    assert.deepEqual([...q.take(3)], [2, 3, 4]);
    assert.deepEqual([...q.take(1)], [5]);
    assert.equal(q.length, 0);
  });

  it("returns a view, not a copy, when the bytes sit in one chunk", () => {
    const q = new ByteQueue();
    const chunk = Buffer.from([9, 8, 7, 6]);
    q.push(chunk);
    assert.equal(q.take(2).buffer, chunk.buffer);
  });

  it("discards at most what it holds", () => {
    const q = new ByteQueue();
    q.push(Buffer.from([1, 2, 3]));
    q.push(Buffer.from([4]));
    assert.equal(q.discard(2), 2);
    assert.equal(q.discard(10), 2);
    assert.equal(q.length, 0);
  });

  it("throws RangeError when asked for more than it holds", () => {
    const q = new ByteQueue();
    q.push(Buffer.from([1]));
    assert.throws(() => q.peek(2), { name: "RangeError", message: "Cannot peek 2 bytes: only 1 queued" });
    assert.throws(() => q.take(2), { name: "RangeError", message: "Cannot take 2 bytes: only 1 queued" });
  });
});
