import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { access, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pino } from "pino";
import { z } from "zod";
import { IpamRunner, type IpamPolicy } from "../cni/index.ts";
import { StateStore } from "../store/index.ts";
import { NetworkPreparer, type CdiDevice, type CdiPublisher, type ClaimForPrepare, type MetadataDeviceInput, type PodSource, type PreparableDevice } from "./preparer.ts";
import { rejectsWith } from "../../test/fixtures/assertions.ts";

const DRIVER = "netclaim.dev";
const HEAD = { apiVersion: "netclaim.dev/v1alpha1", kind: "NetworkConfig" };
const POD = { resource: "pods", apiGroup: "", name: "web-0", uid: "pod-uid-1" };
const signal = new AbortController().signal;

const DEVICES: Record<string, PreparableDevice> = {
  "pci-0000-03-00-0": { ifName: "ens3f0", ifIndex: 7, mac: "0c:42:a1:00:00:01", pciAddress: "0000:03:00.0", resourceName: "netclaim.dev/fast" },
  "pci-0000-03-00-1": { ifName: "ens3f1", ifIndex: 8, mac: "0c:42:a1:00:00:02", pciAddress: "0000:03:00.1", attributes: { "netclaim.dev/ifName": { string: "ens3f1" } } },
  "pci-0000-81-00-0": { ifName: "ib0", ifIndex: 9, pciAddress: "0000:81:00.0", rdma: { device: "mlx5_0", charDevices: ["/dev/infiniband/rdma_cm", "/dev/infiniband/uverbs0"] } },
  "pci-0000-5e-00-0": {
    ifName: "ens5f0", ifIndex: 10, pciAddress: "0000:5e:00.0", shared: true, resourceName: "netclaim.dev/shared",
    rdma: { device: "mlx5_2", charDevices: ["/dev/infiniband/uverbs2"] },
  },
};

class RecordingCdi implements CdiPublisher {
  readonly written = new Map<string, CdiDevice[]>();
  write(claimUid: string, devices: readonly CdiDevice[]): Promise<Map<string, string>> {
    this.written.set(claimUid, [...devices]);
    return Promise.resolve(new Map(devices.map((d) => [d.name, `netclaim.dev/device=${claimUid}-${d.name}`])));
  }
  remove(claimUid: string): Promise<void> {
    this.written.delete(claimUid);
    return Promise.resolve();
  }
}

/**
 * A publisher that also writes device metadata (KEP-5304), as the agent's does; with `dir`, it
 * writes each request's file there (its content: the request's device names).
 */
class MetadataCdi extends RecordingCdi {
  readonly metadata: { claim: ClaimForPrepare["ref"] & { podClaimName?: string | undefined }; driverName: string; devices: MetadataDeviceInput[] }[] = [];
  readonly dir: string;
  constructor(dir = "/run/netclaim/device-metadata") {
    super();
    this.dir = dir;
  }
  async writeMetadata(claim: ClaimForPrepare["ref"] & { podClaimName?: string | undefined }, driverName: string, devices: readonly MetadataDeviceInput[], options: { keepIntact?: boolean } = {}) {
    const seen = new Set<string>();
    const files = new Map(devices.map((d) => {
      const base = d.request.split("/")[0] ?? "";
      const first = !seen.has(base);
      seen.add(base);
      return [d.name, { file: join(this.dir, claim.uid, base, "netclaim.dev-metadata.json"), ...(first && { cdiDeviceId: `netclaim.dev/metadata=${claim.uid}_${base}` }) }] as const;
    }));
    // Here a file reads back when it is there.
    const written: MetadataDeviceInput[] = [];
    for (const device of devices) {
      if (options.keepIntact !== true || !(await isThere(files.get(device.name)?.file ?? ""))) written.push(device);
    }
    if (written.length > 0) this.metadata.push({ claim, driverName, devices: written });
    if (this.dir !== "/run/netclaim/device-metadata") {
      for (const file of new Set(written.map((d) => files.get(d.name)?.file ?? ""))) {
        await mkdir(dirname(file), { recursive: true });
        await writeFile(file, written.filter((d) => files.get(d.name)?.file === file).map((d) => d.name).join(","));
      }
    }
    return files;
  }
}

async function isThere(file: string): Promise<boolean> {
  return access(file).then(() => true, () => false);
}

/** host-local pools live in temporary directories here, so the policy allows the temporary directory. */
const POLICY: IpamPolicy = { allowedTypes: ["host-local", "whereabouts", "static"], allowedPathPrefixes: [`${tmpdir()}/`], allowCrossNamespace: false };

interface SetupOptions {
  connected?: boolean;
  cdi?: RecordingCdi;
  nads?: Record<string, string>;
  policy?: Partial<IpamPolicy>;
  pluginDirs?: readonly string[];
  pods?: PodSource;
  kernelKinds?: readonly string[];
}

async function setup(options: SetupOptions = {}) {
  const store = await StateStore.open(await mkdtemp(join(tmpdir(), "netclaim-prep-")));
  const cdi = options.cdi ?? new RecordingCdi();
  const nadReads: string[] = [];
  const sandbox = await mkdtemp(join(tmpdir(), "netclaim-sandbox-"));
  const preparer = new NetworkPreparer({
    driverName: DRIVER,
    poolName: "worker-1",
    devices: { find: (name) => DEVICES[name] },
    nads: {
      config: (namespace, name) => {
        nadReads.push(`${namespace}/${name}`);
        const config = options.nads?.[`${namespace}/${name}`];
        return config === undefined ? Promise.reject(new Error(`networkattachmentdefinitions "${name}" not found`)) : Promise.resolve(config);
      },
    },
    cdi,
    store,
    // host-local never enters CNI_NETNS, so these tests need no real namespace (test/netns has the real one).
    ipam: new IpamRunner({
      pluginDirs: options.pluginDirs ?? ["/usr/lib/cni"],
      sandbox: { netns: join(sandbox, "netns"), workDir: sandbox },
      policy: { ...POLICY, ...options.policy },
      timeoutMs: 10_000,
    }),
    runtimeConnected: () => options.connected ?? true,
    kernelHasLinkKind: (kind) => Promise.resolve((options.kernelKinds ?? ["macvlan", "ipvlan"]).includes(kind)),
    pods: options.pods,
    logger: pino({ level: "silent" }),
  });
  return { preparer, cdi, store, nadReads };
}

function claim(devices: string[], config: object[] = [], reservedFor = [POD]): ClaimForPrepare {
  return {
    ref: { namespace: "default", name: "web-0-nic", uid: "claim-uid-1" },
    results: devices.map((device, i) => ({ request: i === 0 ? "nic" : `nic${i}`, driver: DRIVER, pool: "worker-1", device })),
    config: config.map((parameters) => ({ source: "FromClaim" as const, requests: [], driver: DRIVER, parameters: { ...HEAD, ...parameters } })),
    reservedFor,
  };
}

/** A host-local pool of exactly two addresses, 198.51.100.10 and .11. */
async function twoAddressNad(): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), "netclaim-ipam-"));
  const range = { subnet: "198.51.100.0/24", rangeStart: "198.51.100.10", rangeEnd: "198.51.100.11" };
  return JSON.stringify({ cniVersion: "1.0.0", name: "pool", type: "macvlan", ipam: { type: "host-local", dataDir, ranges: [[range]], routes: [{ dst: "203.0.113.0/24" }] } });
}

describe("NetworkPreparer.prepare", () => {
  it("plans a native device with its stable identity and merged config, and gives its containers its attach gate", async () => {
    const { preparer, cdi } = await setup();
    let intents = 0;
    const plan = await preparer.prepare(claim(["pci-0000-03-00-1"], [{ interface: { name: "data0", mtu: 9000, addresses: ["198.51.100.5/24"] } }]), signal, () => {
      intents++;
      return Promise.resolve();
    });
    // Static addresses take nothing outside the agent; the CDI spec with the attach gate does.
    assert.equal(intents, 1, "the intent is recorded before the CDI spec is written");
    assert.deepEqual(cdi.written.get("claim-uid-1"), [{ name: "pci-0000-03-00-1", rdmaDevice: undefined, gated: true }]);
    assert.deepEqual(plan.pod, { namespace: "default", name: "web-0", uid: "pod-uid-1" });
    const [device] = plan.devices;
    assert.ok(device);
    assert.equal(device.mode, "native");
    assert.deepEqual(device.identity, { name: "ens3f1", ifindex: 8, pciAddress: "0000:03:00.1" });
    assert.deepEqual(device.interface, { name: "data0", mtu: 9000, addresses: ["198.51.100.5/24"], sysctls: {} });
    assert.deepEqual(device.cdiDeviceIds, ["netclaim.dev/device=claim-uid-1-pci-0000-03-00-1"]);
  });

  it("refuses while the runtime connection is down, so the kubelet retries", async () => {
    const { preparer } = await setup({ connected: false });
    await assert.rejects(preparer.prepare(claim(["pci-0000-03-00-1"]), signal), rejectsWith("RUNTIME_NOT_CONNECTED", /claim default\/web-0-nic: .*NRI/));
  });

  it("refuses a claim that is not reserved for exactly one pod", async () => {
    const { preparer } = await setup();
    await assert.rejects(preparer.prepare(claim(["pci-0000-03-00-1"], [], []), signal), rejectsWith("CLAIM_NOT_RESERVED", /reserved for 0 consumer/));
    const two = [POD, { ...POD, name: "web-1", uid: "pod-uid-2" }];
    await assert.rejects(preparer.prepare(claim(["pci-0000-03-00-1"], [], two), signal), rejectsWith("CLAIM_NOT_RESERVED", /pods\/web-0, pods\/web-1.*one claim per pod/));
  });

  it("names the field of an invalid config", async () => {
    const { preparer } = await setup();
    await assert.rejects(
      preparer.prepare(claim(["pci-0000-03-00-1"], [{ interface: { mtu: 10 } }]), signal),
      rejectsWith("CLAIM_INVALID_CONFIG", /device pci-0000-03-00-1 \(request nic\): spec\.devices\.config\[0\]\.opaque\.parameters\.interface\.mtu: /),
    );
  });

  it("refuses a device this node does not have or another pool's device", async () => {
    const { preparer } = await setup();
    await assert.rejects(preparer.prepare(claim(["pci-0000-99-00-0"]), signal), rejectsWith("CLAIM_DEVICE_MISSING", /not on this node/));
    const other = claim(["pci-0000-03-00-1"]);
    const wrongPool = { ...other, results: other.results.map((r) => ({ ...r, pool: "worker-2" })) };
    await assert.rejects(preparer.prepare(wrongPool, signal), rejectsWith("CLAIM_WRONG_POOL", /pool worker-2, but this node publishes pool worker-1/));
  });

  it("plans a Multus device without touching it or gating it, and refuses one Multus cannot find", async () => {
    const { preparer, cdi } = await setup();
    const plan = await preparer.prepare(claim(["pci-0000-03-00-0"], [{ mode: "multus" }]), signal);
    const [device] = plan.devices;
    assert.ok(device);
    assert.equal(device.mode, "multus");
    assert.equal(cdi.written.size, 0, "Multus attaches it in the sandbox's CNI call: no CDI spec");
    assert.deepEqual(device.cdiDeviceIds, []);
    assert.equal(device.resourceName, "netclaim.dev/fast");
    await assert.rejects(preparer.prepare(claim(["pci-0000-03-00-1"], [{ mode: "multus" }]), signal), rejectsWith("CLAIM_INVALID_CONFIG", /no k8s\.cni\.cncf\.io\/resourceName/));
  });

  it("publishes CDI devices for RDMA and removes them at unprepare", async () => {
    const { preparer, cdi } = await setup();
    const plan = await preparer.prepare(claim(["pci-0000-81-00-0"]), signal);
    const [device] = plan.devices;
    assert.ok(device);
    assert.deepEqual(device.cdiDeviceIds, ["netclaim.dev/device=claim-uid-1-pci-0000-81-00-0"]);
    assert.deepEqual(cdi.written.get("claim-uid-1"), [{ name: "pci-0000-81-00-0", rdmaDevice: "mlx5_0", gated: true }]);
    assert.deepEqual(device.rdma, { device: "mlx5_0", charDevices: ["/dev/infiniband/rdma_cm", "/dev/infiniband/uverbs0"] });
    await preparer.unprepare("claim-uid-1", plan, signal);
    assert.equal(cdi.written.size, 0);
  });

  it("describes each request's devices in a metadata file, mounted through the first device of the request", async () => {
    const cdi = new MetadataCdi();
    const { preparer } = await setup({ cdi });
    let intents = 0;
    const twoRequests: ClaimForPrepare = {
      ...claim([]),
      podClaimName: "nic",
      results: [
        { request: "nic/fast", driver: DRIVER, pool: "worker-1", device: "pci-0000-03-00-1" },
        { request: "nic/fast", driver: DRIVER, pool: "worker-1", device: "pci-0000-81-00-0" },
        { request: "multus", driver: DRIVER, pool: "worker-1", device: "pci-0000-03-00-0" },
      ],
      config: [{ source: "FromClaim", requests: ["multus"], driver: DRIVER, parameters: { ...HEAD, mode: "multus" } }],
    };
    const plan = await preparer.prepare(twoRequests, signal, () => {
      intents++;
      return Promise.resolve();
    });
    assert.equal(intents, 1, "the intent is recorded once, before anything is written");
    assert.deepEqual(cdi.metadata, [{
      claim: { namespace: "default", name: "web-0-nic", uid: "claim-uid-1", podClaimName: "nic" },
      driverName: DRIVER,
      devices: [
        { request: "nic/fast", pool: "worker-1", name: "pci-0000-03-00-1", attributes: { "netclaim.dev/ifName": { string: "ens3f1" } } },
        { request: "nic/fast", pool: "worker-1", name: "pci-0000-81-00-0", attributes: undefined },
        { request: "multus", pool: "worker-1", name: "pci-0000-03-00-0", attributes: undefined },
      ],
    }]);
    assert.deepEqual(plan.devices.map((d) => [d.metadataFile, d.cdiDeviceIds]), [
      ["/run/netclaim/device-metadata/claim-uid-1/nic/netclaim.dev-metadata.json", ["netclaim.dev/device=claim-uid-1-pci-0000-03-00-1", "netclaim.dev/metadata=claim-uid-1_nic"]],
      ["/run/netclaim/device-metadata/claim-uid-1/nic/netclaim.dev-metadata.json", ["netclaim.dev/device=claim-uid-1-pci-0000-81-00-0"]],
      // Multus attaches it, so no attach gate; its containers still get its metadata.
      ["/run/netclaim/device-metadata/claim-uid-1/multus/netclaim.dev-metadata.json", ["netclaim.dev/metadata=claim-uid-1_multus"]],
    ]);
  });
});

describe("NetworkPreparer.restore", () => {
  it("writes again the CDI specs and the metadata files a reboot wiped, and leaves a metadata file still there alone", async () => {
    const cdi = new MetadataCdi(await mkdtemp(join(tmpdir(), "netclaim-metadata-")));
    const { preparer } = await setup({ cdi });
    const twoRequests: ClaimForPrepare = {
      ...claim([]),
      podClaimName: "nic",
      results: [
        { request: "nic", driver: DRIVER, pool: "worker-1", device: "pci-0000-03-00-1" },
        { request: "rdma", driver: DRIVER, pool: "worker-1", device: "pci-0000-81-00-0" },
      ],
    };
    const plan = await preparer.prepare(twoRequests, signal);
    const specs = cdi.written.get("claim-uid-1");
    const [nicFile = "", rdmaFile = ""] = plan.devices.map((d) => d.metadataFile);
    await writeFile(rdmaFile, "with the pod's interface"); // the deferred write after the attach

    // A reboot empties the tmpfs: the CDI specs and the nic request's file go.
    cdi.written.clear();
    await rm(nicFile);
    cdi.metadata.length = 0;
    await preparer.restore(JSON.parse(JSON.stringify(plan)), "claim default/web-0-nic");

    assert.deepEqual(cdi.written.get("claim-uid-1"), specs, "the same CDI devices again");
    assert.deepEqual(cdi.metadata, [{
      claim: { namespace: "default", name: "web-0-nic", uid: "claim-uid-1", podClaimName: "nic" },
      driverName: DRIVER,
      devices: [{ request: "nic", pool: "worker-1", name: "pci-0000-03-00-1", attributes: { "netclaim.dev/ifName": { string: "ens3f1" } } }],
    }], "only the missing file, for its request, under the pod's claim name");
    assert.equal(await readFile(nicFile, "utf8"), "pci-0000-03-00-1");
    assert.equal(await readFile(rdmaFile, "utf8"), "with the pod's interface", "a file still there keeps what the attach wrote");

    cdi.metadata.length = 0;
    await preparer.restore(plan, "claim default/web-0-nic");
    assert.deepEqual(cdi.metadata, [], "nothing missing, nothing written");
  });

  it("says which claim's stored plan it cannot read", async () => {
    const { preparer } = await setup();
    await assert.rejects(preparer.restore({ version: 2 }, "claim default/web-0-nic"), /claim default\/web-0-nic/);
  });
});

describe("NetworkPreparer with IPAM from a NetworkAttachmentDefinition", () => {
  it("leases addresses and routes from host-local and releases them at unprepare", async () => {
    // The third prepare can only succeed after the first is released.
    const nad = await twoAddressNad();
    const { preparer, store } = await setup({ nads: { "default/pool": nad } });
    const leases = store.collection("ipam-leases", z.unknown());
    let leasesAtIntent: number | undefined;
    const first = await preparer.prepare(claim(["pci-0000-03-00-1"], [{ ipamFrom: { name: "pool" } }]), signal, async () => {
      leasesAtIntent ??= (await leases.list()).length;
    });
    assert.equal(leasesAtIntent, 0, "the claim's intent is recorded before its first lease");
    const device = first.devices[0];
    assert.ok(device?.ipam);
    assert.match(device.interface.addresses.join(), /^198\.51\.100\.1[01]\/24$/);
    assert.deepEqual(device.routes, [{ destination: "203.0.113.0/24" }]);
    const second = await preparer.prepare({ ...claim(["pci-0000-03-00-1"], [{ ipamFrom: { name: "pool" } }]), ref: { namespace: "default", name: "b", uid: "claim-uid-2" } }, signal);
    await assert.rejects(
      preparer.prepare({ ...claim(["pci-0000-03-00-1"], [{ ipamFrom: { name: "pool" } }]), ref: { namespace: "default", name: "c", uid: "claim-uid-3" } }, signal),
      rejectsWith("IPAM_FAILED", /IPAM from default\/pool .*no IP addresses available/),
    );
    await preparer.unprepare("claim-uid-1", first, signal);
    const third = await preparer.prepare({ ...claim(["pci-0000-03-00-1"], [{ ipamFrom: { name: "pool" } }]), ref: { namespace: "default", name: "c", uid: "claim-uid-3" } }, signal);
    assert.deepEqual(third.devices[0]?.interface.addresses, device.interface.addresses);
    await preparer.unprepare("claim-uid-2", second, signal);
    await preparer.unprepare("claim-uid-3", third, signal);
  });

  it("gives back the first device's lease when the second device fails", async () => {
    const nad = await twoAddressNad();
    const { preparer } = await setup({ nads: { "default/pool": nad } });
    const twoDevices = claim(["pci-0000-03-00-1", "pci-0000-99-00-0"], [{ ipamFrom: { name: "pool" } }]);
    await assert.rejects(preparer.prepare(twoDevices, signal), rejectsWith("CLAIM_DEVICE_MISSING", /pci-0000-99-00-0/));
    // Both addresses of the pool are free again.
    const a = await preparer.prepare({ ...claim(["pci-0000-03-00-1"], [{ ipamFrom: { name: "pool" } }]), ref: { namespace: "default", name: "a", uid: "a" } }, signal);
    const b = await preparer.prepare({ ...claim(["pci-0000-03-00-1"], [{ ipamFrom: { name: "pool" } }]), ref: { namespace: "default", name: "b", uid: "b" } }, signal);
    assert.notDeepEqual(a.devices[0]?.interface.addresses, b.devices[0]?.interface.addresses);
  });

  it("releases a lease a crashed prepare left behind, when unprepare has no plan", async () => {
    const nad = await twoAddressNad();
    const { preparer, store } = await setup({ nads: { "default/pool": nad } });
    const taken = await preparer.prepare(claim(["pci-0000-03-00-1"], [{ ipamFrom: { name: "pool" } }]), signal);
    assert.equal((await store.collection("ipam-leases", (await import("zod")).z.unknown()).list()).length, 1);
    // The DRA layer lost the plan (crash before it was stored): unprepare must still free the lease.
    await preparer.unprepare("claim-uid-1", undefined, signal);
    const again = await preparer.prepare({ ...claim(["pci-0000-03-00-1"], [{ ipamFrom: { name: "pool" } }]), ref: { namespace: "default", name: "x", uid: "x" } }, signal);
    const another = await preparer.prepare({ ...claim(["pci-0000-03-00-1"], [{ ipamFrom: { name: "pool" } }]), ref: { namespace: "default", name: "y", uid: "y" } }, signal);
    assert.ok([again, another].some((p) => p.devices[0]?.interface.addresses.join() === taken.devices[0]?.interface.addresses.join()));
  });

  it("says which NetworkAttachmentDefinition could not be read", async () => {
    const { preparer } = await setup();
    await assert.rejects(
      preparer.prepare(claim(["pci-0000-03-00-1"], [{ ipamFrom: { namespace: "default", name: "missing" } }]), signal),
      rejectsWith("IPAM_FAILED", /cannot read NetworkAttachmentDefinition default\/missing named by ipamFrom/),
    );
  });
});

/** Stand-in plugins that only record that they ran, named after real ones. */
async function recordingPlugins(types: readonly string[]): Promise<{ dir: string; runs: () => Promise<string[]> }> {
  const dir = await mkdtemp(join(tmpdir(), "netclaim-plugins-"));
  const log = join(dir, "runs.log");
  for (const type of types) {
    await writeFile(join(dir, type), `#!/bin/sh\necho "${type} $CNI_COMMAND" >> ${log}\necho '{"cniVersion":"1.0.0","ips":[{"address":"198.51.100.9/24"}]}'\n`);
    await chmod(join(dir, type), 0o755);
  }
  return { dir, runs: async () => (await readFile(log, "utf8").catch(() => "")).split("\n").filter((line) => line !== "") };
}

describe("NetworkPreparer and the node's IPAM policy", () => {
  const ipamClaim = (ipamFrom: object, namespace = "default") => ({
    ...claim(["pci-0000-03-00-1"], [{ ipamFrom }]),
    ref: { namespace, name: "web-0-nic", uid: "claim-uid-1" },
  });

  async function refusedBeforeAnything(options: SetupOptions, ipamFrom: object, pattern: RegExp, namespace?: string) {
    const plugins = await recordingPlugins(["bridge", "host-local", "dhcp"]);
    const { preparer, store, nadReads } = await setup({ pluginDirs: [plugins.dir], ...options });
    let intents = 0;
    await assert.rejects(
      preparer.prepare(ipamClaim(ipamFrom, namespace), signal, () => {
        intents++;
        return Promise.resolve();
      }),
      rejectsWith("IPAM_NOT_ALLOWED", pattern),
    );
    assert.equal(intents, 0, "no intent recorded");
    assert.deepEqual(await store.collection("ipam-leases", z.unknown()).list(), [], "no lease journaled");
    assert.deepEqual(await plugins.runs(), [], "no plugin ran");
    return nadReads;
  }

  it("refuses a NetworkAttachmentDefinition of another namespace, without reading it", async () => {
    const nadReads = await refusedBeforeAnything(
      { nads: { "infra/pool": JSON.stringify({ cniVersion: "1.0.0", name: "pool", ipam: { type: "host-local" } }) } },
      { namespace: "infra", name: "pool" },
      /device pci-0000-03-00-1 \(request nic\): spec\.devices\.config\[0\]\.opaque\.parameters\.ipamFrom\.namespace is "infra", not the claim's namespace "tenant".*cni\.ipam\.allowCrossNamespace/,
      "tenant",
    );
    assert.deepEqual(nadReads, [], "another namespace's NAD is not even read");
  });

  it("takes addresses from another namespace's NetworkAttachmentDefinition when the node allows it", async () => {
    const nad = await twoAddressNad();
    const { preparer, nadReads } = await setup({ nads: { "infra/pool": nad }, policy: { allowCrossNamespace: true } });
    const plan = await preparer.prepare(ipamClaim({ namespace: "infra", name: "pool" }, "tenant"), signal);
    assert.deepEqual(nadReads, ["infra/pool"]);
    assert.match(plan.devices[0]?.interface.addresses.join() ?? "", /^198\.51\.100\.1[01]\/24$/);
    await preparer.unprepare("claim-uid-1", plan, signal);
  });

  it("accepts ipamFrom.namespace when it is the claim's own", async () => {
    const nad = await twoAddressNad();
    const { preparer } = await setup({ nads: { "tenant/pool": nad } });
    const plan = await preparer.prepare(ipamClaim({ namespace: "tenant", name: "pool" }, "tenant"), signal);
    await preparer.unprepare("claim-uid-1", plan, signal);
  });

  it("refuses an IPAM type the node does not allow before recording or running anything", async () => {
    const bridge = JSON.stringify({ cniVersion: "1.0.0", name: "pool", type: "macvlan", ipam: { type: "bridge" } });
    await refusedBeforeAnything(
      { nads: { "default/pool": bridge } },
      { name: "pool" },
      /ipamFrom of device pci-0000-03-00-1 \(request nic\): Cannot use NetworkAttachmentDefinition default\/pool for IPAM: spec\.config\.ipam\.type is "bridge".*cni\.ipam\.allowedTypes/,
    );
  });

  it("refuses dhcp even when the plugin is installed, saying why", async () => {
    const dhcp = JSON.stringify({ cniVersion: "1.0.0", name: "pool", type: "macvlan", ipam: { type: "dhcp" } });
    await refusedBeforeAnything({ nads: { "default/pool": dhcp } }, { name: "pool" }, /"dhcp".*cannot be allowed/);
  });

  it("refuses a host path outside the allowed prefixes before recording or running anything", async () => {
    const escape = JSON.stringify({ cniVersion: "1.0.0", name: "pool", type: "macvlan", ipam: { type: "host-local", dataDir: "/etc/cron.d" } });
    await refusedBeforeAnything({ nads: { "default/pool": escape } }, { name: "pool" }, /spec\.config\.ipam\.dataDir is "\/etc\/cron\.d".*cni\.ipam\.allowedPathPrefixes/);
  });

  it("forgets, without running it, a lease taken under a policy that has since been narrowed", async () => {
    const plugins = await recordingPlugins(["whereabouts"]);
    const nad = JSON.stringify({ cniVersion: "1.0.0", name: "pool", type: "macvlan", ipam: { type: "whereabouts", range: "198.51.100.0/24" } });
    const wide = await setup({ nads: { "default/pool": nad }, pluginDirs: [plugins.dir] });
    const plan = await wide.preparer.prepare(ipamClaim({ name: "pool" }), signal);
    assert.deepEqual(await plugins.runs(), ["whereabouts ADD"]);
    const narrow = new NetworkPreparer({
      driverName: DRIVER,
      poolName: "worker-1",
      devices: { find: (name) => DEVICES[name] },
      nads: { config: () => Promise.reject(new Error("not read at unprepare")) },
      cdi: new RecordingCdi(),
      store: wide.store,
      ipam: new IpamRunner({ pluginDirs: [plugins.dir], sandbox: { netns: "/nonexistent", workDir: plugins.dir }, policy: { ...POLICY, allowedTypes: ["host-local"] }, timeoutMs: 10_000 }),
      runtimeConnected: () => true,
      logger: pino({ level: "silent" }),
    });
    await narrow.unprepare("claim-uid-1", plan, signal);
    assert.deepEqual(await plugins.runs(), ["whereabouts ADD"], "DEL did not run");
    assert.deepEqual(await wide.store.collection("ipam-leases", z.unknown()).list(), []);
  });
});

/** A pod reader that answers with `annotations` (and `claims`) for POD, or `error`, and counts its reads. */
function podsWith(annotations: Record<string, string>, options: { uid?: string; error?: Error; claims?: string[] } = {}): PodSource & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    get(namespace, name) {
      reads.push(`${namespace}/${name}`);
      if (options.error !== undefined) return Promise.reject(options.error);
      return Promise.resolve({ uid: options.uid ?? POD.uid, annotations, claims: options.claims ?? [] });
    },
  };
}

describe("NetworkPreparer and the pod's Multus networks", () => {
  const NET1 = { interface: { name: "net1" } };

  it("refuses an interface name that the pod's Multus annotation gives a network, saying what to rename, and leaves nothing behind", async () => {
    // Multus names the first network of the list net1.
    const pods = podsWith({ "k8s.v1.cni.cncf.io/networks": "demo-macvlan" });
    const cdi = new MetadataCdi();
    const { preparer } = await setup({ pods, cdi });
    const prepared = preparer.prepare(claim(["pci-0000-03-00-1"], [NET1]), signal);
    await assert.rejects(
      prepared,
      rejectsWith(
        "INTERFACE_NAME_TAKEN",
        /^claim default\/web-0-nic: Cannot name device pci-0000-03-00-1 \(claim default\/web-0-nic, request nic\) "net1" in the pod: the name is already used by Multus network default\/demo-macvlan, which the pod's k8s\.v1\.cni\.cncf\.io\/networks annotation asks for; rename one of them: the interface\.name in the claim's NetworkConfig, or the Multus network's interface in the annotation/,
      ),
    );
    assert.deepEqual(pods.reads, ["default/web-0"]);
    assert.equal(cdi.metadata.length, 1, "the pod was read beside the files' writes");
    assert.equal(cdi.written.size, 0, "a refused claim's files are removed");
  });

  it("reads the pod while the claim's files are written, not before: the read is a round trip on the pod's start", async () => {
    let answer: (() => void) | undefined;
    const pods: PodSource = {
      get: () => new Promise((resolve) => (answer = () => { resolve({ uid: POD.uid, annotations: {}, claims: [] }); })),
    };
    const cdi = new MetadataCdi();
    const { preparer } = await setup({ pods, cdi });
    let settled = false;
    const prepared = preparer.prepare(claim(["pci-0000-03-00-1"], [NET1]), signal).finally(() => (settled = true));
    const until = Date.now() + 10_000;
    while (Date.now() < until && cdi.metadata.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(cdi.metadata.length, 1, "the files are written while the pod is read");
    assert.ok(answer !== undefined, "the pod is being read");
    assert.equal(settled, false, "the prepare waits for the pod's answer");
    answer();
    assert.equal((await prepared).devices[0]?.interface.name, "net1");
  });

  it("takes no address lease before the names are checked", async () => {
    const pods = podsWith({ "k8s.v1.cni.cncf.io/networks": "demo-macvlan" });
    const { preparer } = await setup({ pods, nads: { "default/pool": await twoAddressNad() } });
    const leasing = { ...NET1, ipamFrom: { name: "pool" } };
    let intents = 0;
    const recordIntent = () => {
      intents++;
      return Promise.resolve();
    };
    await assert.rejects(preparer.prepare(claim(["pci-0000-03-00-1"], [leasing]), signal, recordIntent), rejectsWith("INTERFACE_NAME_TAKEN", /Multus network default\/demo-macvlan/));
    assert.equal(intents, 0, "nothing was taken");
  });

  it("counts Multus's default names as Multus does, and honours the names the annotation gives", async () => {
    // JSON form, other namespace: the second network is net2.
    const json = JSON.stringify([{ name: "a", interface: "data" }, { name: "b", namespace: "infra" }]);
    const { preparer } = await setup({ pods: podsWith({ "k8s.v1.cni.cncf.io/networks": json }) });
    await assert.rejects(
      preparer.prepare(claim(["pci-0000-03-00-1"], [{ interface: { name: "net2" } }]), signal),
      rejectsWith("INTERFACE_NAME_TAKEN", /"net2" in the pod: the name is already used by Multus network infra\/b,/),
    );
    await assert.rejects(preparer.prepare(claim(["pci-0000-03-00-1"], [{ interface: { name: "data" } }]), signal), rejectsWith("INTERFACE_NAME_TAKEN", /Multus network default\/a/));
    // The first network is named data, not net1: net1 is free.
    const plan = await preparer.prepare(claim(["pci-0000-03-00-1"], [NET1]), signal);
    assert.equal(plan.devices[0]?.interface.name, "net1");
  });

  it("reads the pod only when a device netclaim attaches configures its name", async () => {
    const pods = podsWith({ "k8s.v1.cni.cncf.io/networks": "demo-macvlan" });
    const { preparer } = await setup({ pods });
    const plans = [
      await preparer.prepare(claim(["pci-0000-03-00-1"], [{ interface: { mtu: 9000 } }]), signal),
      await preparer.prepare(claim(["pci-0000-03-00-0"], [{ mode: "multus" }]), signal),
    ];
    assert.deepEqual(pods.reads, []);
    assert.deepEqual(plans.map((p) => p.podClaims), [undefined, undefined], "no claims of the pod recorded without a read");
  });

  it("records the claims the pod consumes from the read, so the check for claims another pod holds need not read it again", async () => {
    const pods = podsWith({}, { claims: ["web-0-nic", "shared-uplink"] });
    const plan = await (await setup({ pods })).preparer.prepare(claim(["pci-0000-03-00-1"], [NET1]), signal);
    assert.deepEqual(plan.podClaims, ["web-0-nic", "shared-uplink"]);
  });

  it("leaves the check to the attach when the pod cannot be read or was replaced, and records none of its claims", async () => {
    const failing = podsWith({}, { error: new Error('pods "web-0" is forbidden') });
    const plan = await (await setup({ pods: failing })).preparer.prepare(claim(["pci-0000-03-00-1"], [NET1]), signal);
    assert.equal(plan.devices[0]?.interface.name, "net1");
    assert.equal(plan.podClaims, undefined);
    assert.deepEqual(failing.reads, ["default/web-0"]);
    const replaced = podsWith({ "k8s.v1.cni.cncf.io/networks": "demo-macvlan" }, { uid: "pod-uid-2", claims: ["other"] });
    const ofReplaced = await (await setup({ pods: replaced })).preparer.prepare(claim(["pci-0000-03-00-1"], [NET1]), signal);
    assert.equal(ofReplaced.podClaims, undefined, "the claims of the pod that replaced it are not its own");
  });

  it("refuses two devices of the claim that ask for the same name, without a Multus network", async () => {
    const { preparer } = await setup({ pods: podsWith({}) });
    await assert.rejects(
      preparer.prepare(claim(["pci-0000-03-00-1", "pci-0000-81-00-0"], [{ interface: { name: "data0" } }]), signal),
      rejectsWith("INTERFACE_NAME_TAKEN", /"data0" in the pod: the name is already used by device pci-0000-03-00-1 .*; give each device its own interface\.name/),
    );
  });
});

describe("shared parents", () => {
  const SHARED = "pci-0000-5e-00-0";
  const shared = (config: object[] = [], shareIDs = ["6e0f4c3a-9b1d-4c2e-8f00-000000000001"]): ClaimForPrepare => {
    const base = claim([SHARED], config);
    return { ...base, results: base.results.map((r, i) => ({ ...r, shareID: shareIDs[i] })) };
  };

  it("plans a macvlan child in bridge mode with a stable MAC, keeps the parent as its identity and the allocation's share", async () => {
    const { preparer } = await setup();
    const plan = await preparer.prepare(shared([{ interface: { addresses: ["198.51.100.20/24"] } }]), signal);
    const [device] = plan.devices;
    assert.ok(device !== undefined);
    assert.deepEqual(device.child, { kind: "macvlan", mode: "bridge" });
    assert.equal(device.shareID, "6e0f4c3a-9b1d-4c2e-8f00-000000000001");
    assert.deepEqual(device.identity, { name: "ens5f0", ifindex: 10, pciAddress: "0000:5e:00.0" });
    assert.equal(device.rdma, undefined, "a child has no RDMA device of its own");
    const mac = device.interface.hardwareAddress ?? "";
    assert.match(mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    assert.equal(parseInt(mac.slice(0, 2), 16) & 0x03, 0x02, "locally administered unicast");
    const again = await (await setup()).preparer.prepare(shared([{ interface: { addresses: ["198.51.100.20/24"] } }]), signal);
    assert.equal(again.devices[0]?.interface.hardwareAddress, mac, "the same claim gets the same MAC");
    const other = await (await setup()).preparer.prepare({ ...shared(), ref: { namespace: "default", name: "web-1-nic", uid: "claim-uid-2" } }, signal);
    assert.notEqual(other.devices[0]?.interface.hardwareAddress, mac);
  });

  it("takes the kind, mode and MAC policy the config asks for, and a configured MAC over the policy", async () => {
    const { preparer } = await setup();
    const random = await preparer.prepare(shared([{ child: { mode: "private", macPolicy: "random" } }]), signal);
    assert.deepEqual(random.devices[0]?.child, { kind: "macvlan", mode: "private" });
    assert.equal(random.devices[0].interface.hardwareAddress, undefined, "the kernel picks it");
    const fixed = await (await setup()).preparer.prepare(shared([{ interface: { hardwareAddress: "02:00:5e:00:00:09" } }]), signal);
    assert.equal(fixed.devices[0]?.interface.hardwareAddress, "02:00:5e:00:00:09");
    const ipvlan = await (await setup()).preparer.prepare(shared([{ child: { kind: "ipvlan" } }]), signal);
    assert.deepEqual(ipvlan.devices[0]?.child, { kind: "ipvlan", mode: "l2" });
    assert.equal(ipvlan.devices[0].interface.hardwareAddress, undefined, "an ipvlan child has its parent's MAC");
  });

  it("refuses an ipvlan child on a kernel without ipvlan, saying what to ask for instead", async () => {
    const { preparer } = await setup({ kernelKinds: ["macvlan"] });
    await assert.rejects(preparer.prepare(shared([{ child: { kind: "ipvlan", mode: "l3" } }]), signal), rejectsWith("CLAIM_INVALID_CONFIG", /asks for an ipvlan child, but this node's kernel has no ipvlan; ask for child\.kind macvlan/));
  });

  it("refuses a mode of the other kind, and a MAC for an ipvlan child, naming the field", async () => {
    const { preparer } = await setup();
    await assert.rejects(preparer.prepare(shared([{ child: { kind: "ipvlan", mode: "bridge" } }]), signal), rejectsWith("CLAIM_INVALID_CONFIG", /child\.mode: is "bridge", which is not a mode of ipvlan; use one of l2, l3, l3s/));
    await assert.rejects(
      preparer.prepare(shared([{ child: { kind: "ipvlan" }, interface: { hardwareAddress: "02:00:5e:00:00:09" } }]), signal),
      rejectsWith("CLAIM_INVALID_CONFIG", /interface\.hardwareAddress: cannot be set for child\.kind ipvlan/),
    );
  });

  it("refuses a child asked of a device allocated whole", async () => {
    const { preparer } = await setup();
    await assert.rejects(preparer.prepare(claim(["pci-0000-03-00-1"], [{ child: { kind: "macvlan" } }]), signal), rejectsWith("CLAIM_INVALID_CONFIG", /sets child, but the device is allocated whole/));
  });

  it("refuses a shared parent allocated twice to one claim", async () => {
    const { preparer } = await setup();
    const twice = shared([], ["6e0f4c3a-9b1d-4c2e-8f00-000000000001", "6e0f4c3a-9b1d-4c2e-8f00-000000000002"]);
    const base = claim([SHARED, SHARED]);
    await assert.rejects(preparer.prepare({ ...twice, results: base.results.map((r, i) => ({ ...r, shareID: `share-${i}` })) }, signal), rejectsWith("CLAIM_INVALID_CONFIG", /allocated to both request nic and request nic1/));
  });

  it("leaves a shared parent in mode multus to the NetworkAttachmentDefinition: no child", async () => {
    const { preparer } = await setup();
    const plan = await preparer.prepare(shared([{ mode: "multus" }]), signal);
    assert.equal(plan.devices[0]?.child, undefined);
    assert.equal(plan.devices[0]?.resourceName, "netclaim.dev/shared");
  });
});
