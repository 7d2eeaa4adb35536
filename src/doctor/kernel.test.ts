import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { NetlinkError, type PlacedOp } from "../netlink/index.ts";
import { checkLinkKind, checkNetns, checkRdma } from "./kernel.ts";

/** A netlink fake: each operation answers what `answer` says, or throws the error it returns. */
function fakeNetlink(answer: (op: PlacedOp["op"]) => unknown): { batchAcross(ops: readonly PlacedOp[]): Promise<unknown[]>; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    batchAcross(ops) {
      // A throw in the executor rejects the promise, as a failed batch does.
      return new Promise((resolve) => {
        resolve(ops.map(({ op }) => {
          asked.push(op.op);
          const result = answer(op);
          if (result instanceof Error) throw result;
          return result;
        }));
      });
    },
  };
}

const errno = (name: string): NetlinkError => new NetlinkError("NETLINK_ERRNO", `failed with ${name}`, { errnoName: name });

describe("checkLinkKind", () => {
  it("checkLinkKind passes when the kernel knows the kind (ENODEV for ifindex 0)", async () => {
    const netlink = fakeNetlink(() => errno("ENODEV"));
    assert.deepEqual(await checkLinkKind(netlink, "macvlan"), { name: "macvlan", status: "PASS", message: "the kernel has it" });
    assert.deepEqual(netlink.asked, ["createLink"]);
  });

  it("checkLinkKind warns about a missing macvlan but only notes a missing ipvlan", async () => {
    const netlink = fakeNetlink(() => errno("EOPNOTSUPP"));
    const macvlan = await checkLinkKind(netlink, "macvlan");
    assert.equal(macvlan.status, "WARN");
    assert.match(macvlan.fix ?? "", /modprobe macvlan/);
    assert.equal((await checkLinkKind(netlink, "ipvlan")).status, "PASS");
  });

  it("checkLinkKind removes a probe link a kernel made after all", async () => {
    const netlink = fakeNetlink((op) => (op.op === "getLink" ? { index: 42 } : null));
    assert.equal((await checkLinkKind(netlink, "macvlan")).status, "PASS");
    assert.deepEqual(netlink.asked, ["createLink", "getLink", "deleteLink"]);
  });
});

describe("checkRdma", () => {
  it("checkRdma reports exclusive mode and a node without RDMA as PASS", async () => {
    assert.equal((await checkRdma(fakeNetlink(() => "exclusive"))).message, "exclusive: an RDMA device moves into its pod with its netdev");
    const none = await checkRdma(fakeNetlink(() => new NetlinkError("NETLINK_SYSCALL", "socket", { errnoName: "EPROTONOSUPPORT" })));
    assert.equal(none.status, "PASS");
    assert.match(none.message, /^no RDMA subsystem \(EPROTONOSUPPORT\)/);
  });

  it("checkRdma warns about shared mode only when the node has RDMA devices", async () => {
    assert.equal((await checkRdma(fakeNetlink((op) => (op.op === "rdmaNetnsMode" ? "shared" : [])))).status, "PASS");
    const shared = await checkRdma(fakeNetlink((op) => (op.op === "rdmaNetnsMode" ? "shared" : [{ index: 1, name: "mlx5_0" }])));
    assert.equal(shared.status, "WARN");
    assert.match(shared.fix ?? "", /rdma system set netns exclusive/);
  });
});

describe("checkNetns", () => {
  it("checkNetns looks for the process's network namespace in procfs", async () => {
    const proc = await mkdtemp("/tmp/nc-doc-proc-");
    try {
      assert.equal((await checkNetns(proc)).status, "FAIL");
      await mkdir(join(proc, "self/ns"), { recursive: true });
      await writeFile(join(proc, "self/ns/net"), "");
      assert.equal((await checkNetns(proc)).status, "PASS");
    } finally {
      await rm(proc, { recursive: true, force: true });
    }
  });
});
