/** The netlink layer on the real kernel: namespace isolation of the worker and link events. */
import assert from "node:assert/strict";
import { readlinkSync } from "node:fs";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { NetlinkClient, NetlinkError, subscribeLinkEvents, type LinkEvent, type Op } from "../../src/netlink/index.ts";
import { ip, makeNetns, makeVeth, removeLink, uniq } from "./helpers.ts";

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

  it("reads one device's state: its addresses, and the IPv4 and IPv6 routes configured through it in every table (not the kernel's own), none of another device", async () => {
    const netns = makeNetns();
    try {
      for (const dev of ["nctest-st0", "nctest-st1"]) ip("-n", netns.name, "link", "add", dev, "type", "veth", "peer", "name", `${dev}p`);
      const inPod = (...args: string[]): string => ip("-n", netns.name, ...args);
      inPod("link", "set", "nctest-st0", "up");
      inPod("link", "set", "nctest-st1", "up");
      inPod("addr", "add", "198.51.100.1/24", "dev", "nctest-st0");
      inPod("addr", "add", "fd00:51::1/64", "dev", "nctest-st0", "nodad");
      inPod("addr", "add", "203.0.113.1/24", "dev", "nctest-st1");
      inPod("route", "add", "198.51.100.128/25", "via", "198.51.100.254", "dev", "nctest-st0", "table", "1234");
      inPod("-6", "route", "add", "fd00:52::/64", "via", "fd00:51::fe", "dev", "nctest-st0");
      inPod("route", "add", "198.18.0.0/16", "via", "203.0.113.254", "dev", "nctest-st1");
      const [state] = await netlink.batch(netns.path, [{ op: "linkState", key: { name: "nctest-st0" } }] as const);
      assert.ok(state !== null);
      const index = state.link.index;
      assert.ok(state.addresses.every((a) => a.index === index));
      assert.deepEqual(state.addresses.filter((a) => a.scope === 0).map((a) => `${a.address}/${a.prefixLength}`).sort(), ["198.51.100.1/24", "fd00:51::1/64"]);
      assert.ok(state.routes.every((r) => r.oif === index), "only routes through the device");
      const routes = state.routes.map((r) => `${r.dst ?? "default"}/${r.dstLength} ${r.gateway ?? "-"} ${r.table}`);
      assert.ok(routes.includes("198.51.100.128/25 198.51.100.254 1234"), routes.join(", "));
      assert.ok(routes.includes("fd00:52::/64 fd00:51::fe 254"), routes.join(", "));
      assert.ok(!routes.some((r) => r.startsWith("198.18.0.0")));
      // The kernel's own routes (the prefix routes of its addresses, the local table) are left out.
      assert.equal(routes.length, 2, routes.join(", "));
      assert.ok(ip("-n", netns.name, "route", "show", "table", "all", "dev", "nctest-st0").includes("proto kernel"), "the device has kernel routes to leave out");
      // By index, the link and its addresses come in one datagram: the same state.
      const [byIndex] = await netlink.batch(netns.path, [{ op: "linkState", key: { index } }] as const);
      assert.deepEqual(byIndex, state);
    } finally {
      netns.remove();
    }
  });

  it("sends pipelined operations of one namespace together: each runs, and the batch fails with the first error, at its index", async () => {
    const netns = makeNetns();
    try {
      ip("-n", netns.name, "link", "add", "nctest-pl0", "type", "veth", "peer", "name", "nctest-pl1");
      const isUp = (dev: string): boolean => /state UP|,UP/.test(ip("-n", netns.name, "link", "show", dev));
      // The gateway is on no subnet of the device: the kernel says ENETUNREACH.
      const unreachable = (index: number): Op => ({ op: "addRoute", spec: { family: 4, dst: "198.51.100.0", dstLength: 24, gateway: "203.0.113.1", oif: index }, device: "nctest-pl0" });
      const [link] = await netlink.batch(netns.path, [{ op: "getLink", key: { name: "nctest-pl0" } }] as const);
      assert.ok(link !== null);
      const up = (index: number, device: string): Op => ({ op: "setLink", index, device, update: { up: true } });
      await assert.rejects(netlink.batchAcross([
        { netns: netns.path, op: { op: "listAddresses", index: link.index } },
        { netns: netns.path, op: unreachable(link.index), pipelined: true },
        { netns: netns.path, op: up(link.index, "nctest-pl0"), pipelined: true },
      ]), (err: unknown) => {
        assert.ok(err instanceof NetlinkError);
        assert.equal(err.opIndex, 1);
        assert.equal(err.errnoName, "ENETUNREACH");
        assert.equal(err.device, "nctest-pl0");
        return true;
      });
      assert.ok(isUp("nctest-pl0"), "the operation sent with the failed one ran too");
      // Not pipelined (the default), a batch stops at its first failure.
      const [peer] = await netlink.batch(netns.path, [{ op: "getLink", key: { name: "nctest-pl1" } }] as const);
      assert.ok(peer !== null);
      await assert.rejects(netlink.batch(netns.path, [unreachable(link.index), up(peer.index, "nctest-pl1")]), (err: unknown) => err instanceof NetlinkError && err.opIndex === 0);
      assert.ok(!isUp("nctest-pl1"), "the operation after the failed one did not run");
    } finally {
      netns.remove();
    }
  });

  it("lets a pod's namespace go once the thread is idle: what it opened there (a move's target, a socket) is closed", async () => {
    const netns = makeNetns();
    const hostPeer = `nctest-${uniq()}`;
    try {
      ip("link", "add", hostPeer, "type", "veth", "peer", "name", "nctest-gone");
      const gone = (await netlink.listLinks()).find((l) => l.name === "nctest-gone");
      assert.ok(gone);
      await netlink.batch(undefined, [{ op: "setLink", index: gone.index, device: gone.name, update: { netns: netns.path } }] as const);
      await netlink.listLinks(netns.path);
      netns.remove();
      // The pod's end dies with its namespace and takes its host peer along,
      // unless something (a socket left open in there) keeps the namespace.
      const deadline = Date.now() + 5_000;
      while (ip("link").includes(hostPeer) && Date.now() < deadline) await sleep(20);
      assert.ok(!ip("link").includes(hostPeer), "the namespace outlived the pod");
    } finally {
      removeLink(hostPeer);
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
      const heap = await sub.heapStatistics();
      assert.ok(heap !== undefined && heap.used_heap_size > 0 && heap.total_heap_size >= heap.used_heap_size, `its thread's own heap: ${JSON.stringify(heap)}`);
    } finally {
      await sub.close();
    }
    assert.equal(await sub.heapStatistics(), undefined, "no heap once the thread stopped");
  });
});
