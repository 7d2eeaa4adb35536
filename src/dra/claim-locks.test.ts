import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { afterEach, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ClaimLocks } from "./claim-locks.ts";

const never = new AbortController().signal;


describe("ClaimLocks", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp("/tmp/nc-dra-locks-");
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const critical = (locks: ClaimLocks, uid: string, log: string[], name: string) =>
    locks.run(uid, { signal: never }, async () => {
      log.push(`${name}+`);
      await sleep(20);
      log.push(`${name}-`);
    });

  it("ClaimLocks serializes work on one claim within a process", async () => {
    const locks = new ClaimLocks(dir);
    const log: string[] = [];
    await Promise.all([critical(locks, "c1", log, "a"), critical(locks, "c1", log, "b")]);
    assert.deepEqual(log, ["a+", "a-", "b+", "b-"]);
  });

  it("ClaimLocks serializes one claim across instances sharing the directory (flock)", async () => {
    // Two instances open the lock file separately, as two processes do.
    const log: string[] = [];
    await Promise.all([critical(new ClaimLocks(dir), "c1", log, "a"), critical(new ClaimLocks(dir), "c1", log, "b")]);
    assert.ok(log.join() === "a+,a-,b+,b-" || log.join() === "b+,b-,a+,a-", log.join());
  });

  it("ClaimLocks lets claims on different stripes run concurrently", async () => {
    const locks = new ClaimLocks(dir);
    let other = "c2";
    for (let i = 3; locks.stripeOf(other) === locks.stripeOf("c1"); i++) other = `c${i}`;
    const log: string[] = [];
    await Promise.all([critical(locks, "c1", log, "a"), critical(locks, other, log, "b")]);
    assert.deepEqual(log.slice(0, 2).sort(), ["a+", "b+"]);
  });

  it("ClaimLocks gives up waiting when the signal aborts, and the queue moves on", async () => {
    const locks = new ClaimLocks(dir);
    const log: string[] = [];
    const holder = critical(locks, "c1", log, "a");
    const controller = new AbortController();
    const waiter = locks.run("c1", { signal: controller.signal }, () => Promise.resolve());
    controller.abort(new Error("budget ran out"));
    await assert.rejects(waiter, /budget ran out/);
    await critical(locks, "c1", log, "c");
    await holder;
    assert.deepEqual(log, ["a+", "a-", "c+", "c-"]);
  });

  it("ClaimLocks rejects a nonsensical stripe count", () => {
    assert.throws(() => new ClaimLocks(dir, 0), RangeError);
  });

});
