import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { after, describe, it } from "node:test";
import { devicePolicySchema } from "./policy.ts";
import { carryAttached, scanInventory, type DeviceReport } from "./scan.ts";
import { SysfsRoot } from "./sysfs.ts";
import { e810Node, virtioNode, connectxNode } from "../../test/fixtures/nodes.ts";
import { writeSysfsFixture, type SysfsFixture } from "../../test/fixtures/sysfs-tree.ts";

const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function scan(fixture: SysfsFixture, policy?: unknown): Promise<Map<string, DeviceReport>> {
  const root = await mkdtemp("/tmp/nc-unit-");
  roots.push(root);
  await writeSysfsFixture(root, fixture);
  const snapshot = await scanInventory(new SysfsRoot(root), devicePolicySchema.parse(policy));
  return new Map(snapshot.reports.map((r) => [r.device.ifName, r]));
}

describe("scanInventory", () => {
  it("never publishes loopback, the uplink, or what is stacked under it", async () => {
    const reports = await scan(e810Node());
    assert.deepEqual(
      [...reports.values()].filter((r) => r.publish).map((r) => r.device.ifName),
      ["ens2f0", "ens2f1"],
    );
    assert.match(reports.get("bond0.100")?.reason ?? "", /default route/);
    assert.match(reports.get("bond0")?.reason ?? "", /part of node uplink bond0.100/);
    assert.match(reports.get("eno2")?.reason ?? "", /part of node uplink bond0/);
    assert.match(reports.get("lo")?.reason ?? "", /loopback/);
  });

  it("applies the policy after eligibility and explains each decision", async () => {
    const reports = await scan(virtioNode(), { include: [{ ifName: "*" }] });
    assert.equal(reports.get("eth0")?.publish, false, "an include rule cannot publish the uplink");
    assert.equal(reports.get("eth1")?.publish, true);
    assert.equal(reports.get("eth1")?.multusResourceName, "netclaim.dev/netdev");
    assert.equal(reports.get("dummy0")?.multusResourceName, undefined, "no Multus deviceID without a PCI address");
    assert.match(reports.get("veth1a2b3c4d")?.reason ?? "", /excluded by policy/);
  });

  it("publishes nothing under the opt-in default until devices are selected", async () => {
    const reports = await scan(connectxNode(), { include: [] });
    assert.deepEqual([...reports.values()].filter((r) => r.publish), []);
  });

  it("keeps an attached device's last report while its netdev is inside a pod", async () => {
    const before = [...(await scan(connectxNode())).values()];
    const vf = before.find((r) => r.device.ifName === "ens1f0v0");
    assert.ok(vf !== undefined);
    const after = before.filter((r) => r !== vf);
    const carried = carryAttached(after, before, new Set([vf.name]));
    const kept = carried.find((r) => r.name === vf.name)!;
    assert.deepEqual(kept.attributes, vf.attributes);
    assert.equal(kept.attached, true);
    assert.equal(carryAttached(after, before, new Set()).some((r) => r.name === vf.name), false, "a detached device that vanished is gone");
  });
});
