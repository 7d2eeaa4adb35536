import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { EngineError } from "../engine/index.ts";
import { SysfsRoot } from "../inventory/index.ts";
import { cdiDeviceId, rdmaCharDevices, removeCdiSpec, writeCdiSpec } from "./index.ts";

let root: string;

async function put(path: string, text: string): Promise<void> {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, text);
}

/** A sysfs/devfs fixture with two RDMA devices, as the mlx5 driver lays them out. */
before(async () => {
  root = await mkdtemp(join(tmpdir(), "nc-cdi-"));
  const sys = join(root, "sys");
  const dev = join(root, "dev");
  await put(join(sys, "class/infiniband_verbs/uverbs0/ibdev"), "mlx5_0\n");
  await put(join(sys, "class/infiniband_verbs/uverbs0/dev"), "231:192\n");
  await put(join(sys, "class/infiniband_verbs/uverbs1/ibdev"), "mlx5_1\n");
  await put(join(sys, "class/infiniband_verbs/uverbs1/dev"), "231:193\n");
  await put(join(sys, "class/infiniband_mad/umad0/ibdev"), "mlx5_0\n");
  await put(join(sys, "class/infiniband_mad/umad0/dev"), "231:0\n");
  await put(join(sys, "class/infiniband_mad/issm0/ibdev"), "mlx5_0\n");
  await put(join(sys, "class/infiniband_mad/issm0/dev"), "231:64\n");
  await put(join(sys, "class/misc/rdma_cm/dev"), "10:58\n");
  for (const n of ["uverbs0", "uverbs1", "umad0", "issm0", "rdma_cm"]) await put(join(dev, "infiniband", n), "");
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("CDI specs", () => {
  it("finds exactly the char devices of one RDMA device, plus rdma_cm", async () => {
    const devices = await rdmaCharDevices("mlx5_0", { sysfs: new SysfsRoot(root), dev: join(root, "dev") });
    assert.deepEqual(devices, [
      { path: "/dev/infiniband/uverbs0", major: 231, minor: 192 },
      { path: "/dev/infiniband/issm0", major: 231, minor: 64 },
      { path: "/dev/infiniband/umad0", major: 231, minor: 0 },
      { path: "/dev/infiniband/rdma_cm", major: 10, minor: 58 },
    ]);
  });

  it("rejects an RDMA device without a uverbs node", async () => {
    await assert.rejects(rdmaCharDevices("mlx5_9", { sysfs: new SysfsRoot(root), dev: join(root, "dev") }), (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.equal(err.code, "ENGINE_CDI");
      assert.match(err.message, /mlx5_9/);
      return true;
    });
  });

  it("writes the spec atomically (no temporary left) and removes it", async () => {
    const specDir = join(root, "cdi");
    await mkdir(specDir);
    const charDevices = await rdmaCharDevices("mlx5_1", { sysfs: new SysfsRoot(root), dev: join(root, "dev") });
    const file = writeCdiSpec(specDir, "claim-1234-nic0", { charDevices });
    assert.deepEqual(await readdir(specDir), ["netclaim.dev-device_claim-1234-nic0.json"]);
    const spec = JSON.parse(await readFile(file, "utf8")) as { kind: string; devices: { name: string; containerEdits: { deviceNodes: { path: string }[]; mounts?: unknown } }[] };
    assert.equal(spec.kind, "netclaim.dev/device");
    const [device] = spec.devices;
    assert.ok(device);
    assert.equal(device.name, "claim-1234-nic0");
    assert.deepEqual(device.containerEdits.deviceNodes.map((n) => n.path), ["/dev/infiniband/uverbs1", "/dev/infiniband/rdma_cm"]);
    assert.equal(device.containerEdits.mounts, undefined, "a device netclaim does not attach has no gate");
    assert.equal(cdiDeviceId("claim-1234-nic0"), "netclaim.dev/device=claim-1234-nic0");
    await removeCdiSpec(specDir, "claim-1234-nic0");
    assert.deepEqual(await readdir(specDir), []);
  });

  it("mounts a gated device's attach gate read-only under /run/netclaim/devices, with no device nodes when it has no RDMA", async () => {
    const specDir = join(root, "cdi-gated");
    const file = writeCdiSpec(specDir, "claim-1234-nic1", { charDevices: [], gate: { hostPath: "/run/netclaim/attach-gates/claim-1234:nic1", device: "nic1" } });
    const spec = JSON.parse(await readFile(file, "utf8")) as { devices: { containerEdits: Record<string, unknown> }[] };
    assert.deepEqual(spec.devices[0]?.containerEdits, {
      mounts: [{ hostPath: "/run/netclaim/attach-gates/claim-1234:nic1", containerPath: "/run/netclaim/devices/nic1", type: "bind", options: ["bind", "ro", "nosuid", "nodev", "noexec"] }],
    });
  });
});
