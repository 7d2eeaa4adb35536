import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  decodeDeviceMetadata, encodeDeviceMetadata, publishClaimMetadata, recordNetworkData, removeClaimMetadata, updateNetworkData,
  type DeviceMetadata, type MetadataClaim, type MetadataLocation,
} from "./index.ts";

const DRIVER = "netclaim.dev";
const UID = "0f1e2d3c-aaaa-bbbb-cccc-000000000001";
const fixture = (name: string): Promise<string> => readFile(new URL(`testdata/${name}`, import.meta.url), "utf8");

const ATTRIBUTES = {
  "resource.kubernetes.io/pcieRoot": { string: "pci0000:00" },
  "netclaim.dev/ifName": { string: "eth1" },
  "resource.kubernetes.io/numaNode": { int: 0 },
  "netclaim.dev/sriov": { bool: false },
  "netclaim.dev/kernelVersion": { version: "6.8.0" },
  "netclaim.dev/vendorName": { string: "A&B <NIC>" },
};
const DIRECT: MetadataClaim = { namespace: "default", name: "claim-a", uid: UID };
const FROM_TEMPLATE: MetadataClaim = { ...DIRECT, podClaimName: "net" };
const NETWORK = { interfaceName: "net1", ips: ["10.1.0.5/24", "fd00::5/64"], hardwareAddress: "02:00:00:00:00:01" };

function metadata(claim: MetadataClaim, request: string, generation: number, networkData?: typeof NETWORK): DeviceMetadata {
  return { claim, generation, request, devices: [{ driver: DRIVER, pool: "node-1", name: "eth1", attributes: ATTRIBUTES, networkData }] };
}

async function location(): Promise<MetadataLocation> {
  const root = await mkdtemp(join(tmpdir(), "netclaim-metadata-"));
  return { dir: join(root, "device-metadata"), specDir: join(root, "cdi") };
}

describe("device metadata file format (KEP-5304)", () => {
  it("writes the bytes the library's encoder writes: v1beta1 then v1alpha1, a direct claim at generation 1", async () => {
    assert.equal(encodeDeviceMetadata(metadata(DIRECT, "nic", 1)), await fixture("metadata-direct-gen1.json"));
  });

  it("writes podClaimName, a subrequest's full name and networkData as the library does", async () => {
    assert.equal(encodeDeviceMetadata(metadata(FROM_TEMPLATE, "nic/fast", 2, NETWORK)), await fixture("metadata-template-gen2.json"));
  });

  it("reads back the first version it knows, skipping a newer one", async () => {
    const newer = `${JSON.stringify({ kind: "DeviceMetadata", apiVersion: "metadata.resource.k8s.io/v1", metadata: { generation: 9 } })}\n`;
    const read = decodeDeviceMetadata(newer + (await fixture("metadata-template-gen2.json")), "test");
    assert.equal(read.generation, 2);
    assert.equal(read.request, "nic/fast");
    assert.deepEqual(read.claim, FROM_TEMPLATE);
    const [device] = read.devices;
    assert.ok(device);
    assert.deepEqual(device.networkData, NETWORK);
    assert.deepEqual(device.attributes, ATTRIBUTES);
    assert.throws(() => decodeDeviceMetadata(newer, "f.json"), /f\.json holds no DeviceMetadata of metadata\.resource\.k8s\.io\/v1beta1/);
    assert.throws(() => decodeDeviceMetadata("{} x", "f.json"), /f\.json is not a stream of JSON objects/);
  });

  it("refuses what the API would not accept, naming the claim, request and device", () => {
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`netclaim.dev/a${String(i)}`, { int: i }]));
    const bad = (m: DeviceMetadata): (() => string) => () => encodeDeviceMetadata(m);
    assert.throws(bad({ ...metadata(DIRECT, "nic", 1), devices: [{ driver: DRIVER, pool: "node-1", name: "eth1", attributes: many }] }), /claim default\/claim-a, request nic: device eth1: 33 attributes/);
    assert.throws(bad(metadata({ ...DIRECT, podClaimName: "../etc" }, "nic", 1)), /pod-claim-name annotation "\.\.\/etc" is not a DNS label/);
    assert.throws(bad(metadata(DIRECT, "nic", 1, { ...NETWORK, ips: ["10.1.0.5"] })), /device eth1: "10\.1\.0\.5" is not an address in CIDR form/);
    assert.throws(bad(metadata(DIRECT, "a/b/c", 1)), /request name must be/);
  });
});

describe("publishClaimMetadata", () => {
  it("writes a file and a CDI spec per request, with the CDI device on the first device of each request", async () => {
    const where = await location();
    const published = await publishClaimMetadata(where, DRIVER, DIRECT, [
      { request: "nic", pool: "node-1", name: "eth1", attributes: ATTRIBUTES },
      { request: "nic", pool: "node-1", name: "eth2" },
      { request: "rdma/fast", pool: "node-1", name: "ib0" },
    ]);
    const nicFile = join(where.dir, UID, "nic", "netclaim.dev-metadata.json");
    const rdmaFile = join(where.dir, UID, "rdma", "netclaim.dev-metadata.json");
    assert.deepEqual(Object.fromEntries(published), {
      eth1: { file: nicFile, cdiDeviceId: `netclaim.dev/metadata=${UID}_nic` },
      eth2: { file: nicFile },
      ib0: { file: rdmaFile, cdiDeviceId: `netclaim.dev/metadata=${UID}_rdma` },
    });
    const nic = decodeDeviceMetadata(await readFile(nicFile, "utf8"), nicFile);
    assert.equal(nic.generation, 1);
    assert.deepEqual(nic.devices.map((d) => [d.driver, d.pool, d.name]), [[DRIVER, "node-1", "eth1"], [DRIVER, "node-1", "eth2"]]);
    // A subrequest: the file and CDI device take the base name, the file the full one.
    assert.equal(decodeDeviceMetadata(await readFile(rdmaFile, "utf8"), rdmaFile).request, "rdma/fast");

    assert.deepEqual((await readdir(where.specDir)).sort(), [`netclaim.dev-metadata_${UID}_nic.json`, `netclaim.dev-metadata_${UID}_rdma.json`]);
    const spec: unknown = JSON.parse(await readFile(join(where.specDir, `netclaim.dev-metadata_${UID}_rdma.json`), "utf8"));
    assert.deepEqual(spec, {
      cdiVersion: "0.6.0",
      kind: "netclaim.dev/metadata",
      devices: [{
        name: `${UID}_rdma`,
        containerEdits: {
          mounts: [{
            hostPath: rdmaFile,
            containerPath: "/var/run/kubernetes.io/dra-device-attributes/resourceclaims/claim-a/rdma/netclaim.dev-metadata.json",
            type: "bind",
            options: ["bind", "ro", "nosuid", "nodev", "noexec"],
          }],
        },
      }],
    });
  });

  it("mounts a template's claim under the pod's name for it", async () => {
    const where = await location();
    await publishClaimMetadata(where, DRIVER, FROM_TEMPLATE, [{ request: "nic", pool: "node-1", name: "eth1" }]);
    const spec = JSON.parse(await readFile(join(where.specDir, `netclaim.dev-metadata_${UID}_nic.json`), "utf8")) as { devices: { containerEdits: { mounts: { containerPath: string }[] } }[] };
    assert.equal(spec.devices[0]?.containerEdits.mounts[0]?.containerPath, "/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/net/nic/netclaim.dev-metadata.json");
    const file = join(where.dir, UID, "nic", "netclaim.dev-metadata.json");
    assert.equal(decodeDeviceMetadata(await readFile(file, "utf8"), file).claim.podClaimName, "net");
  });

  it("refuses two subrequests of one request, which would share a file", async () => {
    const where = await location();
    await assert.rejects(
      publishClaimMetadata(where, DRIVER, DIRECT, [{ request: "nic/a", pool: "node-1", name: "eth1" }, { request: "nic/b", pool: "node-1", name: "eth2" }]),
      /claim default\/claim-a: devices eth1 and eth2 are allocated for requests nic\/a and nic\/b/,
    );
  });
});

describe("updateNetworkData", () => {
  async function published(): Promise<{ where: MetadataLocation; file: string }> {
    const where = await location();
    await publishClaimMetadata(where, DRIVER, FROM_TEMPLATE, [
      { request: "nic/fast", pool: "node-1", name: "eth1", attributes: ATTRIBUTES },
      { request: "nic/fast", pool: "node-1", name: "eth2" },
    ]);
    return { where, file: join(where.dir, UID, "nic", "netclaim.dev-metadata.json") };
  }

  it("adds networkData in place, in the same inode, and raises the generation", async () => {
    const { file } = await published();
    const before = await stat(file);
    assert.equal(await updateNetworkData(file, new Map([["eth1", { ...NETWORK, ips: ["10.1.0.5/24", "fd00:0::5/64", "10.1.0.5/24"] }]])), true);
    const after = await stat(file);
    assert.equal(after.ino, before.ino, "a container's bind mount holds the inode");
    const text = await readFile(file, "utf8");
    // Exactly what the library writes for the same object: both versions, canonical unique CIDRs.
    const read = decodeDeviceMetadata(text, file);
    assert.equal(read.generation, 2);
    assert.deepEqual(read.devices.map((d) => d.networkData), [NETWORK, undefined]);
    assert.equal(text, encodeDeviceMetadata({ ...read }));
    assert.equal(text.split('"generation": 2').length, 3, "both versions say generation 2");
  });

  it("with keepIntact, keeps a file that reads back and writes again one a power cut left empty, and every CDI spec", async () => {
    const { where, file } = await published();
    await updateNetworkData(file, new Map([["eth1", NETWORK]]));
    const rdma = await publishClaimMetadata(where, DRIVER, FROM_TEMPLATE, [{ request: "rdma", pool: "node-1", name: "ib0" }]);
    const rdmaFile = rdma.get("ib0")?.file ?? "";
    await writeFile(rdmaFile, ""); // an unsynced write after a power cut
    await rm(where.specDir, { recursive: true });
    const devices = [
      { request: "nic/fast", pool: "node-1", name: "eth1", attributes: ATTRIBUTES },
      { request: "nic/fast", pool: "node-1", name: "eth2" },
      { request: "rdma", pool: "node-1", name: "ib0" },
    ];
    const again = await publishClaimMetadata(where, DRIVER, FROM_TEMPLATE, devices, { keepIntact: true });
    assert.deepEqual([...again.keys()], ["eth1", "eth2", "ib0"]);
    const kept = decodeDeviceMetadata(await readFile(file, "utf8"), file);
    assert.equal(kept.generation, 2, "the file with the pod's interface is kept");
    assert.deepEqual(kept.devices[0]?.networkData, NETWORK);
    assert.equal(decodeDeviceMetadata(await readFile(rdmaFile, "utf8"), rdmaFile).generation, 1, "the empty file is written again");
    assert.equal((await readdir(where.specDir)).length, 2, "both CDI specs are written again");
  });

  it("writes nothing when the data is what the file holds, and shrinks the file when it is shorter", async () => {
    const { file } = await published();
    await recordNetworkData([{ file, device: "eth1", networkData: NETWORK }, { file, device: "eth2", networkData: { interfaceName: "net2", ips: [] } }]);
    assert.equal(await updateNetworkData(file, new Map([["eth1", NETWORK]])), false);
    assert.equal(decodeDeviceMetadata(await readFile(file, "utf8"), file).generation, 2, "two devices of one file: one write");
    assert.equal(await updateNetworkData(file, new Map([["eth1", { interfaceName: "n", ips: [] }]])), true);
    const read = decodeDeviceMetadata(await readFile(file, "utf8"), file);
    assert.equal(read.generation, 3);
    assert.deepEqual(read.devices[0]?.networkData, { interfaceName: "n", ips: [] });
  });

  it("says which device and file when it cannot", async () => {
    const { file } = await published();
    await assert.rejects(updateNetworkData(file, new Map([["eth9", NETWORK]])), /claim default\/claim-a, request nic\/fast: device eth9 is not in its metadata file/);
    await assert.rejects(recordNetworkData([{ file: `${file}.gone`, device: "eth1", networkData: NETWORK }]), /cannot read device metadata .*\.gone/);
  });
});

describe("removeClaimMetadata", () => {
  it("removes the claim's files and CDI specs, and only the claim's", async () => {
    const where = await location();
    const other = "0f1e2d3c-aaaa-bbbb-cccc-000000000002";
    await publishClaimMetadata(where, DRIVER, DIRECT, [{ request: "nic", pool: "node-1", name: "eth1" }, { request: "rdma", pool: "node-1", name: "ib0" }]);
    await publishClaimMetadata(where, DRIVER, { ...DIRECT, name: "claim-b", uid: other }, [{ request: "nic", pool: "node-1", name: "eth2" }]);
    // A temporary spec an interrupted write left.
    await writeFile(join(where.specDir, `netclaim.dev-metadata_${UID}_nic.json.tmp-1`), "{");
    await removeClaimMetadata(where, UID);
    assert.deepEqual(await readdir(where.dir), [other]);
    assert.deepEqual(await readdir(where.specDir), [`netclaim.dev-metadata_${other}_nic.json`]);
    await removeClaimMetadata(where, UID);
    await removeClaimMetadata({ dir: join(where.dir, "none"), specDir: join(where.specDir, "none") }, UID);
    await assert.rejects(removeClaimMetadata(where, "../x"), /"\.\.\/x" is not a claim UID/);
  });
});
