import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { devicePolicySchema } from "./policy.ts";
import { discoverNetDevices } from "./discover.ts";
import { defaultRouteInterfaces } from "./routes.ts";
import { carryAttached, reportDevices, scanInventory, type DeviceReport } from "./scan.ts";
import { SysfsRoot } from "./sysfs.ts";
import { cniNode, e810Node, virtioNode, connectxNode } from "../../test/fixtures/nodes.ts";
import { fixtureLinkKinds, writeSysfsFixture, type SysfsFixture } from "../../test/fixtures/sysfs-tree.ts";

const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function fixtureRoot(fixture: SysfsFixture): Promise<SysfsRoot> {
  const root = await mkdtemp("/tmp/nc-unit-");
  roots.push(root);
  await writeSysfsFixture(root, fixture);
  return new SysfsRoot(root);
}

const byIfName = (reports: readonly DeviceReport[]): Map<string, DeviceReport> => new Map(reports.map((r) => [r.device.ifName, r]));

/** Scans as the agent does on a node: sysfs plus the kernel's link kinds. */
async function scan(fixture: SysfsFixture, policy?: unknown): Promise<Map<string, DeviceReport>> {
  const snapshot = await scanInventory(await fixtureRoot(fixture), devicePolicySchema.parse(policy), { linkKinds: fixtureLinkKinds(fixture) });
  return byIfName(snapshot.reports);
}

/** Discovers once, then reports under any number of policies (a scan's pure half). */
async function reporter(fixture: SysfsFixture): Promise<(policy?: unknown) => Map<string, DeviceReport>> {
  const sysfs = await fixtureRoot(fixture);
  const [devices, uplinks] = await Promise.all([discoverNetDevices(sysfs, { linkKinds: fixtureLinkKinds(fixture) }), defaultRouteInterfaces(sysfs)]);
  return (policy) => byIfName(reportDevices(devices, uplinks, devicePolicySchema.parse(policy)));
}

const published = (reports: Map<string, DeviceReport>): string[] => [...reports.values()].filter((r) => r.publish).map((r) => r.device.ifName);

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
    assert.equal(reports.get("Storage_Net")?.publish, true);
    assert.equal(reports.get("Storage_Net")?.multusResourceName, "netclaim.dev/netdev", "a virtual link can be handed to Multus too");
    assert.match(reports.get("veth1a2b3c4d")?.reason ?? "", /never published by default: veth, bridge-port/);
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

describe("scanInventory: shared parents", () => {
  const e810 = (policy: unknown): Promise<Map<string, DeviceReport>> => scan(e810Node(), policy);

  it("reports a device the share rule selects as a shared parent, with its figures, its attribute and why", async () => {
    const reports = await e810({ include: [{ ifName: "ens2f0", share: { interfaces: 8 } }, { ifName: "ens2f1" }] });
    const parent = reports.get("ens2f0");
    assert.equal(parent?.publish, true);
    assert.deepEqual(parent.share, {
      interfaces: 8,
      bandwidth: "25G",
      bandwidthFrom: "link speed",
      requestPolicy: { interfaces: { default: "1", validValues: ["1"] }, bandwidth: { default: "3125M", validRange: { min: "1M", step: "1M" } } },
    });
    assert.equal(parent.attributes.local.sharedParent, true);
    assert.equal(parent.reason, 'selected by policy include[0] {"ifName":"ens2f0"}, published as a shared parent: 8 interfaces, bandwidth 25G bit/s (link speed)');
    const whole = reports.get("ens2f1");
    assert.equal(whole?.publish, true);
    assert.equal(whole.share, undefined, "a whole-device NIC has no share");
    assert.equal("sharedParent" in whole.attributes.local, false);
  });

  it("reports a link without speed as a parent without bandwidth, and figures that do not fit as not published", async () => {
    // ens2f1 is down: it reports no speed.
    const noSpeed = (await e810({ include: [{ ifName: "ens2f1", share: { interfaces: 2 } }] })).get("ens2f1");
    assert.equal(noSpeed?.publish, true);
    assert.equal(noSpeed.share?.bandwidth, undefined);
    assert.match(noSpeed.reason, /no bandwidth capacity \(the link reports no speed and share\.bandwidth is not set\)$/);
    const tooBig = (await e810({ include: [{ ifName: "ens2f0", share: { interfaces: 2, bandwidthPolicy: { min: "40G" } } }] })).get("ens2f0");
    assert.equal(tooBig?.publish, false);
    assert.equal(tooBig.share, undefined);
    assert.match(tooBig.reason, /^selected by policy include\[0\] .*, not published: .*share\.bandwidthPolicy\.min 40G is more than the bandwidth 25G \(link speed\)/);
  });
});

describe("scanInventory: the kind guard", () => {
  const fixture = cniNode();
  const guarded = Object.entries(fixture.guards).filter(([, kinds]) => kinds.length > 0);
  let scanCni: (policy?: unknown) => Map<string, DeviceReport>;
  before(async () => {
    scanCni = await reporter(fixture);
  });
  const reasonFor = (kinds: readonly string[]): string =>
    `never published by default: ${kinds.join(", ")} (opt in with include[].kinds: [${kinds.join(", ")}] or name it exactly)`;

  it("publishes no guarded device by default or for include ifName *, and says why", () => {
    for (const policy of [undefined, { include: [{ ifName: "*" }] }, { include: [{ ifName: "*" }], exclude: [{ ifName: "unrelated0" }] }]) {
      const reports = scanCni(policy);
      assert.deepEqual(published(reports).sort(), ["eth1", "eth1.200", "macvlan0"], JSON.stringify(policy));
      for (const [ifName, kinds] of guarded) assert.equal(reports.get(ifName)?.reason, reasonFor(kinds), ifName);
    }
  });

  it("publishes each guarded device for a rule that opts into its kinds, or names it exactly", () => {
    for (const [ifName, kinds] of guarded) {
      const byKinds = scanCni({ include: [{ ifName: "*", kinds }] });
      assert.equal(byKinds.get(ifName)?.publish, true, `${ifName} with kinds ${kinds.join(",")}`);
      const byName = scanCni({ include: [{ ifName }] });
      assert.deepEqual(published(byName), [ifName], `${ifName} named exactly`);
    }
  });

  it("does not publish a device with one of its guarded kinds left out", () => {
    const reports = scanCni({ include: [{ ifName: "*", kinds: ["veth"] }] });
    assert.equal(reports.get("cali1234abcd")?.publish, false, "veth and cni: cni not opted in");
    assert.equal(reports.get("veth0c1d2e3f")?.publish, false, "veth and bridge-port: bridge-port not opted in");
    assert.equal(reports.get("vxlan100")?.publish, false);
  });

  it("lets exclude win over an exact name, and never publishes the uplink even when named with every kind", () => {
    const excluded = scanCni({ include: [{ ifName: "cali1234abcd" }], exclude: [{ ifName: "cali*" }] });
    assert.match(excluded.get("cali1234abcd")?.reason ?? "", /^excluded by policy exclude\[0\]/);
    const uplink = scanCni({ include: [{ ifName: "eth0", kinds: Object.values(fixture.guards).flat() }] });
    assert.equal(uplink.get("eth0")?.publish, false);
    assert.equal(uplink.get("eth0")?.reason, "never published: carries a default route (node uplink)");
  });

  it("fails the scan when link kinds cannot be read, rather than publish without the guard", async () => {
    const failing = (): Promise<never> => Promise.reject(new Error("netlink worker stopped"));
    await assert.rejects(scanInventory(await fixtureRoot(fixture), devicePolicySchema.parse(undefined), { linkKinds: failing }), {
      code: "DISCOVERY_NO_LINK_KINDS",
      message: "Cannot read the kinds of network devices: netlink worker stopped",
    });
  });

  it("skips a device the link dump does not know (renamed or deleted after the listing)", async () => {
    const kinds = new Map(await fixtureLinkKinds(fixture)());
    kinds.delete("eth1");
    const snapshot = await scanInventory(await fixtureRoot(fixture), devicePolicySchema.parse(undefined), { linkKinds: () => Promise.resolve(kinds) });
    assert.equal(snapshot.reports.some((r) => r.device.ifName === "eth1"), false);
    assert.equal(snapshot.reports.some((r) => r.device.ifName === "macvlan0"), true);
  });
});
