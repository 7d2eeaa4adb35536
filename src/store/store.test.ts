import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { fork } from "node:child_process";
import { mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { FileLock, StateStore, StoreError, type Durability } from "./index.ts";

const Record = z.object({ generation: z.number().int(), payload: z.string() });

async function tempStore(durability: Durability = "reboot"): Promise<StateStore> {
  return StateStore.open(await mkdtemp(join(tmpdir(), "netclaim-store-")), { durability });
}

const durabilities: Durability[] = ["reboot", "restart"];

describe("StateStore", () => {
  for (const durability of durabilities) {
    it(`put, get, list and delete records (${durability})`, async () => {
      const store = await tempStore(durability);
      const claims = store.collection("claims", Record);
      assert.equal(await claims.get("a"), undefined);
      assert.deepEqual(await claims.list(), []);
      await claims.put("b", { generation: 2, payload: "two" });
      await claims.put("a", { generation: 1, payload: "one" });
      await claims.put("a", { generation: 3, payload: "three" });
      assert.deepEqual(await claims.get("a"), { generation: 3, payload: "three" });
      assert.deepEqual((await claims.list()).map(([k]) => k), ["a", "b"]);
      await claims.delete("a");
      await claims.delete("a");
      assert.deepEqual((await claims.list()).map(([k]) => k), ["b"]);
    });
  }

  it("a restart store keeps its records while the boot ID stays, and forgets them when it changes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "netclaim-store-"));
    const bootIdFile = join(dir, "..", `${dir.split("/").at(-1) ?? ""}-boot-id`);
    const open = async (bootId: string): Promise<StateStore> => {
      await writeFile(bootIdFile, `${bootId}\n`);
      return StateStore.open(join(dir, "run"), { durability: "restart", bootIdFile });
    };
    await (await open("boot-1")).collection("attachments", Record).put("a", { generation: 1, payload: "one" });
    assert.deepEqual(await (await open("boot-1")).collection("attachments", Record).get("a"), { generation: 1, payload: "one" });
    const afterReboot = (await open("boot-2")).collection("attachments", Record);
    assert.deepEqual(await afterReboot.list(), []);
    // A reboot store next to it is never touched by this.
    const durable = await StateStore.open(join(dir, "state"));
    await durable.collection("claims", Record).put("c", { generation: 2, payload: "two" });
    await open("boot-3");
    assert.deepEqual(await durable.collection("claims", Record).get("c"), { generation: 2, payload: "two" });
  });

  it("keeps keys with slashes and odd characters intact", async () => {
    const claims = (await tempStore()).collection("claims", Record);
    const key = "pod/6f1c-uid/eth1 ../..";
    await claims.put(key, { generation: 1, payload: "x" });
    assert.deepEqual((await claims.list())[0]?.[0], key);
  });

  it("refuses to store a record its schema rejects, leaving the old one", async () => {
    const claims = (await tempStore()).collection("claims", Record);
    await claims.put("a", { generation: 1, payload: "ok" });
    await assert.rejects(claims.put("a", { generation: 1.5, payload: "bad" }), TypeError);
    assert.deepEqual(await claims.get("a"), { generation: 1, payload: "ok" });
  });

  it("writes what a trusting collection is given, and still checks it when read", async () => {
    const store = await tempStore();
    const trusting = store.collection("claims", Record, { trustWrites: true });
    await trusting.put("a", { generation: 1.5, payload: "unchecked" });
    await assert.rejects(trusting.get("a"), { code: "STORE_CORRUPT" });
    await assert.rejects(store.collection("claims", Record).put("a", { generation: 1.5, payload: "checked" }), TypeError);
  });

  it("names the file when a record on disk is corrupt", async () => {
    const store = await tempStore();
    const claims = store.collection("claims", Record);
    await claims.put("a", { generation: 1, payload: "ok" });
    await writeFile(join(store.dir, "claims", "a.json"), "{not json");
    await assert.rejects(claims.get("a"), (err: unknown) => {
      assert.ok(err instanceof StoreError);
      assert.equal(err.code, "STORE_CORRUPT");
      assert.match(err.message, /claims\/a\.json/);
      return true;
    });
    await writeFile(join(store.dir, "claims", "a.json"), '{"generation":"x"}');
    await assert.rejects(claims.get("a"), { code: "STORE_CORRUPT" });
  });

  it("validates a file read again only when its text changed, another writer's change included, and hands out records no reader can change", async () => {
    const store = await tempStore();
    const claims = store.collection("claims", Record);
    const other = store.collection("claims", Record);
    await claims.put("a", { generation: 1, payload: "one" });
    const first = await claims.get("a");
    assert.equal(await claims.get("a"), first, "unchanged text: the record decoded before");
    assert.ok(Object.isFrozen(first));
    assert.throws(() => {
      (first as { generation: number }).generation = 2;
    }, TypeError);
    await other.put("a", { generation: 2, payload: "one" });
    assert.deepEqual(await claims.get("a"), { generation: 2, payload: "one" }, "a write through another collection (or process) is read");
    await writeFile(join(store.dir, "claims", "a.json"), '{"generation":"x"}');
    await assert.rejects(claims.get("a"), { code: "STORE_CORRUPT" });
    await other.delete("a");
    assert.equal(await claims.get("a"), undefined);
    assert.deepEqual(await claims.list(), []);
  });

  it("rejects bad collection names and empty keys", async () => {
    const store = await tempStore();
    assert.throws(() => store.collection("../x", Record), RangeError);
    await assert.rejects(store.collection("c", Record).get(""), { code: "STORE_KEY" });
  });

  for (const durability of durabilities) {
    it(`a reader after kill -9 at any point sees each record before or after a write, never half (${durability})`, async () => {
      const store = await tempStore(durability);
      const writer = new URL("./testdata/store-writer.ts", import.meta.url).pathname;
      for (let round = 0; round < 12; round++) {
        const child = fork(writer, [store.dir, durability], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
        // The writer reports once it is writing; kill it at a different moment each round, mid-burst.
        await new Promise((resolve) => child.once("message", resolve));
        await new Promise((resolve) => setTimeout(resolve, round * 7));
        child.kill("SIGKILL");
        await new Promise((resolve) => child.once("exit", resolve));
        const records = store.collection("burst", Record);
        for (const [key, value] of await records.list()) {
          // Each record's payload is derived from its generation; a torn write would break this.
          assert.equal(value.payload, `${key}:${value.generation}:${"x".repeat(value.generation % 4096)}`);
        }
        await records.removeStaleTemporaries();
        assert.ok((await readdir(join(store.dir, "burst"))).every((n) => !n.includes(".tmp-")));
      }
    });
  }
});

describe("FileLock", () => {
  it("excludes a second holder until the first releases", async () => {
    const path = join(await mkdtemp(join(tmpdir(), "netclaim-lock-")), "serialize.lock");
    const first = await FileLock.acquire(path);
    const order: string[] = [];
    const second = FileLock.acquire(path).then((lock) => {
      order.push("second acquired");
      return lock;
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    order.push("first releasing");
    await first.release();
    await (await second).release();
    assert.deepEqual(order, ["first releasing", "second acquired"]);
  });

  it("is released by the kernel when the holder is killed", async (t) => {
    const path = join(await mkdtemp(join(tmpdir(), "netclaim-lock-")), "serialize.lock");
    const holder = fork(new URL("./testdata/lock-holder.ts", import.meta.url).pathname, [path], { stdio: ["ignore", "ignore", "ignore", "ipc"] });
    t.after(() => holder.kill("SIGKILL"));
    await new Promise((resolve) => holder.once("message", resolve));
    const abort = AbortSignal.timeout(50);
    await assert.rejects(FileLock.acquire(path, { signal: abort }), { name: "TimeoutError" });
    holder.kill("SIGKILL");
    const lock = await FileLock.acquire(path, { signal: AbortSignal.timeout(5000) });
    await lock.release();
  });
});
