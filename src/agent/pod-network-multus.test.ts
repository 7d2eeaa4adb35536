import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import type { ClaimPlan } from "../claims/plan.ts";
import type { DeviceState } from "../claims/status.ts";
import { ClaimState, type JsonValue } from "../dra/index.ts";
import type { Attacher } from "../engine/index.ts";
import type { Address, BatchRunner, Link } from "../netlink/index.ts";
import type { PodSandboxInfo } from "../nri/index.ts";
import { StateStore } from "../store/index.ts";
import { PodNetwork } from "./pod-network.ts";

const CLAIM = { namespace: "team-a", name: "vf", uid: "claim-vf" };
const POD: PodSandboxInfo = {
  id: "sandbox-web",
  uid: "uid-web",
  name: "web",
  namespace: "team-a",
  netnsPath: "/var/run/netns/cni-web",
  ips: [],
  labels: {},
  annotations: { "kubernetes.io/config.source": "api" },
  pid: 0,
};

/** A claim of one device handed to Multus, as prepare stores it. */
const PLAN: ClaimPlan = {
  version: 1,
  claim: CLAIM,
  pod: { namespace: POD.namespace, name: POD.name, uid: POD.uid },
  devices: [{
    request: "nic",
    pool: "worker-1",
    device: "pci-0000-3b-00-2",
    mode: "multus",
    identity: { name: "ens1f0v2", ifindex: 12, pciAddress: "0000:3b:00.2" },
    interface: { addresses: [], sysctls: {} },
    routes: [],
    cdiDeviceIds: [],
    resourceName: "netclaim.dev/netdev",
  }],
};

/** What Multus's CNI ADD left in the pod: eth0 and the device as net1. */
const POD_LINKS: Link[] = [
  { index: 1, name: "lo", mtu: 65536, up: true, carrier: true },
  { index: 3, name: "eth0", mtu: 1500, up: true, carrier: true, kind: "veth", mac: "0a:58:c6:12:00:02" },
  { index: 12, name: "net1", mtu: 1500, up: true, carrier: true, mac: "b8:ce:f6:00:00:02", parentDevice: "0000:3b:00.2", parentBus: "pci" },
];
const POD_ADDRESSES: Address[] = [{ family: 4, index: 12, address: "198.51.100.250", prefixLength: 24, scope: 0, flags: 0 }];

/** Nothing is ever attached by netclaim in this mode: the engine must not be asked to. */
const idleEngine = {
  attached: () => Promise.resolve([]),
  attachments: () => Promise.resolve([]),
  begin: () => Promise.reject(new Error("a device left to Multus was handed to the engine")),
} as unknown as Attacher;

describe("PodNetwork with a device left to Multus", () => {
  let dir: string;
  let reported: { device: string; state: DeviceState }[];
  let podNetns: () => Promise<[Link[], Address[]]>;
  let network: PodNetwork;
  let claims: ClaimState;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "netclaim-multus-"));
    claims = new ClaimState(await StateStore.open(dir), "netclaim.dev");
    await claims.markPrepared(CLAIM, { devices: [{ requestNames: ["nic"], poolName: "worker-1", deviceName: "pci-0000-3b-00-2", cdiDeviceIDs: [] }], plan: PLAN as unknown as JsonValue });
    reported = [];
    podNetns = () => Promise.resolve([POD_LINKS, POD_ADDRESSES]);
    const netlink = {
      batch: (netns: string | undefined) => {
        assert.equal(netns, POD.netnsPath, "reads the pod's namespace");
        return podNetns();
      },
      batchAcross: () => Promise.reject(new Error("not used")),
    } as unknown as BatchRunner;
    network = new PodNetwork({
      claims,
      engine: idleEngine,
      netlink,
      status: { setDevice: (_claim, { device }, state) => reported.push({ device, state }), event: () => undefined },
      consumers: { ofClaim: () => Promise.resolve([POD.uid]), ofPod: () => Promise.resolve(new Set([CLAIM.name])) },
      rdmaMode: "shared",
      nriPluginName: "netclaim",
      recovery: { retarget: () => Promise.resolve() },
      logger: pino({ level: "silent" }),
    });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reports the interface Multus made of the device, found in the pod by its PCI address", async () => {
    await network.runPodSandbox(POD, { signal: new AbortController().signal });
    assert.deepEqual(reported, [{
      device: "pci-0000-3b-00-2",
      state: { kind: "delegated", resourceName: "netclaim.dev/netdev", interfaceName: "net1", addresses: ["198.51.100.250/24"], hardwareAddress: "b8:ce:f6:00:00:02" },
    }]);
  });

  it("counts the device as in a pod from its prepare on and while its claim stays prepared, so a host scan keeps it published", async () => {
    assert.equal(network.attachedDevices().has("pci-0000-3b-00-2"), false);
    network.claimPrepared(PLAN);
    assert.equal(network.attachedDevices().has("pci-0000-3b-00-2"), true);
    await network.refreshAttached();
    assert.equal(network.attachedDevices().has("pci-0000-3b-00-2"), true, "the prepared claim keeps it counted");
    await claims.forget(CLAIM);
    await network.refreshAttached();
    assert.equal(network.attachedDevices().has("pci-0000-3b-00-2"), false, "unprepared, it is the host scan's again");
  });

  it("still reports the device as delegated, and lets the pod start, when its namespace cannot be read", async () => {
    podNetns = () => Promise.reject(new Error("ENOENT: no such network namespace"));
    await network.runPodSandbox(POD, { signal: new AbortController().signal });
    assert.deepEqual(reported, [{ device: "pci-0000-3b-00-2", state: { kind: "delegated", resourceName: "netclaim.dev/netdev" } }]);
  });
});
