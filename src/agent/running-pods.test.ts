import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PodSandboxInfo } from "../nri/index.ts";
import { runningPods } from "./running-pods.ts";

function sandbox(id: string, uid: string, netnsPath: string | undefined, pid: number): PodSandboxInfo {
  return { id, uid, name: `pod-${uid}`, namespace: "default", netnsPath, ips: [], labels: {}, annotations: {}, pid };
}

// What containerd 2.3.7 sent on this node after a pod's pause process died and the kubelet replaced its sandbox.
const stopped = sandbox("435bba52", "uid-1", undefined, 0);
const live = sandbox("e608fda2", "uid-1", "/run/containerd/io.containerd.grpc.v1.cri/netns/cni-e4ff2814", 7958);

describe("runningPods", () => {
  it("takes a pod's live sandbox whether its stopped one is listed before or after it", () => {
    assert.equal(runningPods([live, stopped]).get("uid-1"), live);
    assert.equal(runningPods([stopped, live]).get("uid-1"), live);
  });

  it("leaves out a pod whose sandboxes have no network namespace: stopped, or on the host's network", () => {
    const hostNetwork = sandbox("c0ffee00", "uid-2", undefined, 4242);
    assert.deepEqual([...runningPods([stopped, hostNetwork]).keys()], []);
  });

  it("prefers the sandbox whose pause process runs when two have a namespace", () => {
    const replaced = sandbox("aaaa0000", "uid-3", "/run/netns/cni-old", 0);
    const current = sandbox("bbbb1111", "uid-3", "/run/netns/cni-new", 31337);
    assert.equal(runningPods([current, replaced]).get("uid-3"), current);
    assert.equal(runningPods([replaced, current]).get("uid-3"), current);
  });
});
