import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ContainerAdjustmentSchema, ContainerSchema, ContainerState, PodSandboxSchema } from "../gen/nri/api_pb.js";
import { containerAdjustment, containerInfo, podSandboxInfo } from "./model.ts";

describe("NRI model conversion", () => {
  it("podSandboxInfo takes the netns path from the network namespace entry", () => {
    const pod = create(PodSandboxSchema, {
      id: "sb",
      uid: "u",
      name: "n",
      namespace: "ns",
      ips: ["203.0.113.9"],
      pid: 42,
      linux: { namespaces: [{ type: "pid" }, { type: "network", path: "/var/run/netns/cni-1" }] },
    });
    const info = podSandboxInfo(pod);
    assert.equal(info.netnsPath, "/var/run/netns/cni-1");
    assert.deepEqual(info.ips, ["203.0.113.9"]);
    assert.equal(info.pid, 42);
    assert.equal(podSandboxInfo(create(PodSandboxSchema, { linux: { namespaces: [{ type: "network", path: "" }] } })).netnsPath, undefined);
    assert.equal(podSandboxInfo(undefined).id, "");
  });

  it("containerInfo names the state", () => {
    assert.equal(containerInfo(create(ContainerSchema, { state: ContainerState.CONTAINER_STOPPED })).state, "stopped");
  });

  it("containerAdjustment encodes devices with optional mode and owner, and env as key/value", () => {
    const adjust = containerAdjustment({ devices: [{ path: "/dev/a", type: "c", major: 1, minor: 2, fileMode: 0o600 }], env: { A: "1" } });
    const decoded = fromBinary(ContainerAdjustmentSchema, toBinary(ContainerAdjustmentSchema, adjust));
    const device = decoded.linux?.devices[0];
    assert.equal(device?.path, "/dev/a");
    assert.equal(device.major, 1n);
    assert.equal(device.fileMode?.value, 0o600);
    assert.equal(device.uid, undefined);
    assert.deepEqual(decoded.env.map((e) => [e.key, e.value]), [["A", "1"]]);
  });
});
