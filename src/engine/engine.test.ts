import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { NetlinkClient, NetlinkError, type Link, type LinkState, type Op, type PlacedOp } from "../netlink/index.ts";
import { StateStore } from "../store/index.ts";
import { AttachEngine } from "./engine.ts";
import { EngineError } from "./errors.ts";

const hostLink: Link = { index: 7, name: "eth9", mtu: 1500, mac: "02:00:00:00:00:07", up: true, carrier: true, kind: "veth" };

/**
 * A netlink client that answers from a script instead of the kernel, so a
 * test can make any request of a batch fail the way the worker reports it.
 */
class ScriptedClient extends NetlinkClient {
  readonly #failOp: Op["op"];
  readonly #error: NetlinkError;

  constructor(failOp: Op["op"], error: NetlinkError) {
    super();
    this.#failOp = failOp;
    this.#error = error;
  }

  override batchAcross(ops: readonly PlacedOp[]): Promise<never> {
    const results = ops.map(({ op }, i) => {
      if (op.op === this.#failOp) throw this.#error.atOp(i);
      if (op.op === "listLinks") return [];
      if (op.op === "linkState") return { link: hostLink, addresses: [], routes: [] } satisfies LinkState;
      return null;
    });
    return Promise.resolve(results as never);
  }
}

let dir: string;
let store: StateStore;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "nc-engine-unit-"));
  store = await StateStore.open(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const plan = { key: "claim-1", device: { name: "eth9" }, netns: "/var/run/netns/nctest-x", podName: "net1", addresses: ["203.0.113.5/24"] };

describe("engine error reporting", () => {
  it("names the device and the step for a malformed reply in a merged batch", async () => {
    const malformed = new NetlinkError("NETLINK_MALFORMED", "RTM_NEWADDR 203.0.113.5/24 (device net1): attribute 3 length 40 does not fit", { request: "RTM_NEWADDR", device: "net1" });
    const engine = new AttachEngine({ netlink: new ScriptedClient("addAddress", malformed), store });
    await assert.rejects(engine.attach([plan]), (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.equal(err.code, "ENGINE_STEP_FAILED");
      assert.equal(err.step, "configure");
      assert.equal(err.device, "eth9");
      assert.match(err.message, /attachment claim-1, device eth9, step configure: .*device net1.*attribute 3/);
      assert.ok(err.cause instanceof NetlinkError && err.cause.code === "NETLINK_MALFORMED");
      return true;
    });
  });

  it("names the device and the step for a kernel errno on the move", async () => {
    const busy = new NetlinkError("NETLINK_ERRNO", "RTM_NEWLINK netns /var/run/netns/nctest-x (device eth9) failed with EBUSY", { errno: 16, errnoName: "EBUSY", device: "eth9" });
    const engine = new AttachEngine({ netlink: new ScriptedClient("setLink", busy), store });
    await assert.rejects(engine.attach([{ ...plan, key: "claim-2" }]), (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.equal(err.step, "move");
      assert.match(err.message, /device eth9, step move: .*EBUSY/);
      return true;
    });
  });

  it("rejects an invalid plan with the field path before touching anything", async () => {
    const engine = new AttachEngine({ netlink: new ScriptedClient("listLinks", new NetlinkError("NETLINK_WORKER", "must not be called")), store });
    await assert.rejects(engine.attach([{ ...plan, key: "claim-3", podName: "much-too-long-name0" }]), (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.equal(err.code, "ENGINE_PLAN");
      assert.match(err.message, /podName: must be 1-15 characters/);
      return true;
    });
    await assert.rejects(engine.attach([{ ...plan, key: "claim-4", sysctls: { "kernel.panic": "1" } }]), /sysctls.kernel.panic: must look like net.ipv4.conf.<podName>.arp_ignore/);
    await assert.rejects(engine.attach([{ ...plan, key: "claim-5", sysctls: { "net.ipv4.conf.eth0.arp_ignore": "1" } }]), /sysctls.net.ipv4.conf.eth0.arp_ignore: must name the pod-side interface net1/);
  });
});
