import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Link } from "../netlink/index.ts";
import { PodLinkWatch, type PodLinkState } from "./pod-links.ts";

const link = (carrier: boolean, up = true): Link => ({ index: 5, name: "net1", mtu: 1500, up, carrier });

/** An engine whose podLinks() answers what the test sets next. */
class Links {
  next: Map<string, Link | null> | Error = new Map();
  podLinks(): Promise<Map<string, Link | null>> {
    return this.next instanceof Error ? Promise.reject(this.next) : Promise.resolve(this.next);
  }
}

describe("PodLinkWatch", () => {
  it("keeps each device's state in its pod by DRA device name and tells only of changes", async () => {
    const engine = new Links();
    const errors: unknown[] = [];
    const watch = new PodLinkWatch(engine, { onError: (err) => errors.push(err) });
    let changes = 0;
    const subscription = watch.onChange(() => changes++);

    engine.next = new Map([["uid-1:eth1", link(true)], ["uid-2:eth2", null]]);
    await watch.poll();
    assert.deepEqual(watch.byDevice(), new Map<string, PodLinkState>([["eth1", { up: true, carrier: true }], ["eth2", "missing"]]));
    assert.equal(changes, 1);

    await watch.poll();
    assert.equal(changes, 1, "the same states again are no change");

    engine.next = new Map([["uid-1:eth1", link(false)], ["uid-2:eth2", null]]);
    await watch.poll();
    assert.deepEqual(watch.byDevice().get("eth1"), { up: true, carrier: false });
    assert.equal(changes, 2);

    engine.next = new Error("engine thread gone");
    await watch.poll();
    assert.deepEqual(watch.byDevice().get("eth1"), { up: true, carrier: false }, "a failed poll keeps the last states");
    assert.match(String(errors[0]), /reading the links of devices in pods failed: engine thread gone/);

    engine.next = new Map();
    await watch.poll();
    assert.equal(watch.byDevice().size, 0);
    assert.equal(changes, 3);
    subscription[Symbol.dispose]();
  });
});
