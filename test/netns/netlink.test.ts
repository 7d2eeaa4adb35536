/** The netlink layer on the real kernel: namespace isolation of the worker and link events. */
import assert from "node:assert/strict";
import { readlinkSync } from "node:fs";
import { after, describe, it } from "node:test";
import { NetlinkClient, subscribeLinkEvents, type LinkEvent } from "../../src/netlink/index.ts";
import { ip, makeNetns, makeVeth, removeLink } from "./helpers.ts";

const netlink = new NetlinkClient();
after(async () => {
  await netlink.close();
});

describe("netlink on the real kernel", () => {
  it("runs one batch across namespaces, in order, and reports each operation's time", async () => {
    const netns = makeNetns();
    const timed: { ops: string[]; opMs: readonly number[] }[] = [];
    const client = new NetlinkClient({ onOpTimes: (ops, opMs) => timed.push({ ops: ops.map((o) => `${o.op.op}@${o.netns ?? "host"}`), opMs }) });
    try {
      ip("-n", netns.name, "link", "add", "nctest-ac0", "type", "veth", "peer", "name", "nctest-ac1");
      const [podLinks, hostLinks] = (await client.batchAcross([
        { netns: netns.path, op: { op: "listLinks" } },
        { netns: undefined, op: { op: "listLinks" } },
      ])) as [{ name: string }[], { name: string }[]];
      assert.deepEqual(podLinks.map((l) => l.name).sort(), ["lo", "nctest-ac0", "nctest-ac1"]);
      assert.ok(!hostLinks.some((l) => l.name === "nctest-ac0"), "the second operation ran back on the host");
      assert.deepEqual(timed.at(-1)?.ops, [`listLinks@${netns.path}`, "listLinks@host"]);
      assert.equal(timed.at(-1)?.opMs.length, 2);
      assert.ok(timed.at(-1)?.opMs.every((ms) => ms >= 0 && ms < 10_000));
    } finally {
      await client.close();
      netns.remove();
    }
  });

  it("runs pod-namespace work on the worker thread without moving the main thread", async () => {
    const netns = makeNetns();
    try {
      ip("-n", netns.name, "link", "add", "nctest-in0", "type", "veth", "peer", "name", "nctest-in1");
      const mainBefore = readlinkSync("/proc/thread-self/ns/net");
      const pending = netlink.listLinks(netns.path);
      // The worker is inside the pod's namespace now or soon; this thread is not.
      assert.equal(readlinkSync("/proc/thread-self/ns/net"), mainBefore);
      const podLinks = await pending;
      assert.deepEqual(podLinks.map((l) => l.name).sort(), ["lo", "nctest-in0", "nctest-in1"]);
      assert.equal(readlinkSync("/proc/thread-self/ns/net"), mainBefore);
      // And the worker itself came back: a host batch sees the host again.
      const hostLinks = await netlink.listLinks();
      assert.ok(hostLinks.some((l) => l.name === "lo") && !hostLinks.some((l) => l.name === "nctest-in0"));
    } finally {
      netns.remove();
    }
  });

  it("creates veth and macvlan devices in place inside a pod namespace and deletes them", async () => {
    const netns = makeNetns();
    try {
      await netlink.createLink(netns.path, { kind: "veth", name: "nctest-c0", peerName: "nctest-c1" });
      const parent = await netlink.getLink(netns.path, { name: "nctest-c0" });
      assert.ok(parent);
      await netlink.createLink(netns.path, { kind: "macvlan", name: "nctest-m0", parentIndex: parent.index });
      const links = await netlink.listLinks(netns.path);
      assert.deepEqual(links.map((l) => `${l.name}:${l.kind ?? ""}`).sort(), ["lo:", "nctest-c0:veth", "nctest-c1:veth", "nctest-m0:macvlan"]);
      await assert.rejects(netlink.createLink(netns.path, { kind: "veth", name: "nctest-c0", peerName: "nctest-c2" }), /RTM_NEWLINK create veth \(device nctest-c0\) failed with EEXIST/);
      await netlink.deleteLink(netns.path, parent.index, "nctest-c0");
      assert.deepEqual((await netlink.listLinks(netns.path)).map((l) => l.name), ["lo"]);
    } finally {
      netns.remove();
    }
  });

  it("reports an unopenable namespace as a syscall error naming the path", async () => {
    await assert.rejects(netlink.listLinks("/var/run/netns/nctest-absent"), /cannot open network namespace \/var\/run\/netns\/nctest-absent: ENOENT/);
  });

  it("delivers RTM_NEWLINK and RTM_DELLINK events to a subscriber", async () => {
    const events: LinkEvent[] = [];
    let wake: () => void = () => undefined;
    const sub = subscribeLinkEvents((e) => {
      events.push(e);
      wake();
    });
    const seen = (pred: (e: LinkEvent) => boolean): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => {
          if (events.some(pred)) resolve();
        };
        wake = check;
        check();
      });
    try {
      // The subscription thread needs a moment to bind; retry creating until seen.
      let nic = "";
      const created = seen((e) => e.kind === "new" && e.link.name === nic);
      for (let i = 0; i < 50 && !events.some((e) => e.kind === "new" && e.link.name === nic); i++) {
        if (nic !== "") removeLink(nic);
        nic = makeVeth();
        await new Promise((r) => setTimeout(r, 100));
      }
      await created;
      removeLink(nic);
      await seen((e) => e.kind === "delete" && e.link.name === nic);
    } finally {
      await sub.close();
    }
  });
});
