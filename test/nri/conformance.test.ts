/**
 * netclaim's NRI plugin against the real runtime side of NRI
 * (containerd/nri pkg/adaptation, as containerd and CRI-O embed it), at every
 * version a supported runtime embeds (NRI_VERSIONS): those that deliver pod
 * events as StateChange (v0.8, v0.10, v0.11) and the one with dedicated
 * methods (v0.12).
 */
import assert from "node:assert/strict";
import { afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { NriPlugin } from "../../src/nri/index.ts";
import { recordingPlugin, reconnected } from "./recording-plugin.ts";
import { NRI_VERSIONS, RuntimePeer, removeDir, runtimePeerBinary, shortTempDir, type PodSpec } from "./runtime-peer.ts";

const pod = (id: string, extra: Partial<PodSpec> = {}): PodSpec => ({
  id,
  uid: `uid-${id}`,
  name: `name-${id}`,
  namespace: "team-a",
  netns: `/var/run/netns/cni-${id}`,
  ips: ["203.0.113.7", "fd00::7"],
  annotations: { "example.com/key": "value" },
  ...extra,
});

for (const version of NRI_VERSIONS) {
  describe(`NRI plugin against the ${version} runtime`, () => {
    let dir: string;
    let peer: RuntimePeer | undefined;
    let plugin: NriPlugin | undefined;

    before(() => {
      runtimePeerBinary(version); // build once, outside the tests' time
    });
    afterEach(async () => {
      await plugin?.close();
      await peer?.stop();
      plugin = undefined;
      peer = undefined;
      removeDir(dir);
    });

    async function connect(options: Parameters<typeof recordingPlugin>[1] = {}, peerOptions: Parameters<typeof RuntimePeer.start>[2] = {}) {
      dir = shortTempDir();
      peer = await RuntimePeer.start(version, dir, peerOptions);
      const made = recordingPlugin(peer.socketPath, options);
      plugin = made.plugin;
      return { peer, ...made };
    }

    it("registers, takes the runtime's configuration and synchronizes pods and containers already running", async () => {
      dir = shortTempDir();
      peer = await RuntimePeer.start(version, dir, { requestTimeoutMs: 1500 });
      await peer.command("setState", { pods: 5, padBytes: 16 });
      const made = recordingPlugin(peer.socketPath);
      plugin = made.plugin;
      plugin.start();
      await plugin.whenConnected();
      const sync = await peer.nextEvent("sync");
      assert.equal(sync.error, undefined);
      const runtime = plugin.runtime;
      assert.ok(runtime);
      assert.equal(runtime.runtimeName, "nri-runtime-peer");
      assert.equal(runtime.requestTimeoutMs, 1500);
      assert.equal(runtime.events, 0xf, "subscribes to exactly the pod events and CreateContainer it handles");
      const [state] = made.recording.syncs;
      assert.ok(state);
      assert.deepEqual(state.pods.map((p) => p.id), ["pod-0000", "pod-0001", "pod-0002", "pod-0003", "pod-0004"]);
      assert.equal(state.pods[2]!.netnsPath, "/var/run/netns/cni-pod-0002");
      assert.deepEqual(state.pods[2]!.ips, ["203.0.113.3"]);
      assert.deepEqual(state.containers.map((c) => [c.id, c.podSandboxId, c.state]).slice(0, 1), [["ctr-pod-0000", "pod-0000", "running"]]);
      assert.equal(state.containers.length, 5);
      assert.equal(plugin.state, "connected");
    });

    it("assembles a synchronization state larger than 4 MiB that the runtime sends in chunks", async () => {
      dir = shortTempDir();
      peer = await RuntimePeer.start(version, dir);
      const pods = 300;
      const padBytes = 20_000; // 300 × 20 kB ≈ 6 MB: over the 4 MiB ttrpc limit
      await peer.command("setState", { pods, padBytes });
      const made = recordingPlugin(peer.socketPath);
      plugin = made.plugin;
      plugin.start();
      await plugin.whenConnected();
      const sync = await peer.nextEvent("sync");
      assert.equal(sync.error, undefined);
      assert.equal(made.recording.syncs.length, 1, "one handler call after the last chunk");
      const state = made.recording.syncs[0]!;
      assert.equal(state.pods.length, pods);
      assert.equal(state.containers.length, pods);
      assert.equal(new Set(state.pods.map((p) => p.id)).size, pods);
      assert.ok(state.pods.every((p) => p.annotations.pad?.length === padBytes));
    });

    it("delivers RunPodSandbox, StopPodSandbox and RemovePodSandbox with the pod's network namespace", async () => {
      const { peer, recording } = await connect();
      plugin!.start();
      await plugin!.whenConnected();
      const spec = pod("web-1");
      for (const op of ["runPod", "stopPod", "removePod"]) await peer.command(op, { pod: spec });
      assert.deepEqual(recording.events.map((e) => e.method), ["runPodSandbox", "stopPodSandbox", "removePodSandbox"]);
      for (const { pod: seen } of recording.events) {
        assert.deepEqual(
          { id: seen.id, uid: seen.uid, name: seen.name, namespace: seen.namespace, netnsPath: seen.netnsPath, ips: seen.ips, annotations: seen.annotations },
          { id: "web-1", uid: "uid-web-1", name: "name-web-1", namespace: "team-a", netnsPath: "/var/run/netns/cni-web-1", ips: ["203.0.113.7", "fd00::7"], annotations: { "example.com/key": "value" } },
        );
      }
      // A v0.12 runtime tries the dedicated methods first and logs a deprecation when it has to fall back to StateChange.
      assert.doesNotMatch(peer.stderr, /newer version of NRI/);
    });

    it("reports a host-network pod without a network namespace", async () => {
      const { peer, recording } = await connect();
      plugin!.start();
      await plugin!.whenConnected();
      const hostNetwork = pod("host-1");
      delete hostNetwork.netns;
      await peer.command("runPod", { pod: hostNetwork });
      assert.equal(recording.events[0]?.pod.netnsPath, undefined);
    });

    it("has a CreateContainer device adjustment applied by the runtime", async () => {
      const device = { path: "/dev/infiniband/uverbs3", type: "c", major: 231, minor: 195, fileMode: 0o666, uid: 0, gid: 0 } as const;
      const { peer } = await connect({ adjust: { devices: [device] } });
      plugin!.start();
      await plugin!.whenConnected();
      const result = (await peer.command("createContainer", { pod: pod("rdma-1"), container: { id: "c1", name: "app", podId: "rdma-1" } })) as { devices: unknown[] };
      assert.deepEqual(result.devices, [device]);
    });

    it("carries messages larger than 4096 bytes in both directions", async () => {
      const devices = Array.from({ length: 200 }, (_, i) => ({ path: `/dev/netclaim-test/device-with-a-long-name-${i}`, type: "c" as const, major: 240, minor: i, fileMode: 0o600, uid: 0, gid: 0 }));
      const { peer, recording } = await connect({ adjust: { devices } });
      plugin!.start();
      await plugin!.whenConnected();
      const big = "y".repeat(64 * 1024);
      await peer.command("runPod", { pod: pod("big-1", { annotations: { big } }) });
      assert.equal(recording.events[0]?.pod.annotations.big, big, "a 64 KiB request from the runtime arrives intact");
      const result = (await peer.command("createContainer", { pod: pod("big-1"), container: { id: "c1", name: "app", podId: "big-1" } })) as { devices: unknown[] };
      assert.deepEqual(result.devices, devices, "a response of ~10 KiB from us is applied intact");
    });

    it("is dropped when a handler overruns the runtime's timeout, warns before that, then reconnects and re-synchronizes", async () => {
      const slowDone = Promise.withResolvers<boolean>();
      const { peer, recording } = await connect(
        {
          onPodEvent: async (_method, seen, signal) => {
            if (seen.id !== "slow-1") return;
            await sleep(1200); // ignores its signal on purpose: a stuck attach
            slowDone.resolve(signal.aborted);
          },
        },
        { requestTimeoutMs: 400 },
      );
      await peer.command("setState", { pods: 2, padBytes: 8 });
      plugin!.start();
      await plugin!.whenConnected();
      const back = reconnected(plugin!);
      await peer.command("runPod", { pod: pod("slow-1") }); // the runtime carries on without us
      await back;
      await peer.nextEvent("sync", 2);
      assert.equal(recording.syncs.length, 2, "synchronized again after reconnecting");
      assert.equal(recording.syncs[1]?.pods.length, 2);
      await peer.command("runPod", { pod: pod("after-1") });
      assert.deepEqual(recording.events.map((e) => e.pod.id), ["slow-1", "after-1"]);
      const slowMethods = ["RunPodSandbox", "StateChange/runPodSandbox"];
      const warning = recording.logs.find((l) => l.level === "warn" && slowMethods.includes(String(l.fields.method)));
      assert.ok(warning, "the budget warning names the slow handler");
      assert.equal(warning.fields.requestTimeoutMs, 400);
      assert.equal(warning.fields.subject, "pod team-a/name-slow-1 (uid-slow-1)");
      assert.equal(await slowDone.promise, true, "the stuck handler's signal was aborted");
    });

    // What keeps a CreateContainer the agent dies in from becoming a container without its
    // interfaces: NRI v0.12.5 fails such a request when the plugin asks (FailurePolicy); earlier
    // versions have no such policy and go on without the plugin.
    it(
      version === "v0.12"
        ? "has a request it could not answer failed, not carried on without it, when it asks for that"
        : "has a request it could not answer carried on without it (no failure policy before NRI v0.12.5)",
      async () => {
        const { peer } = await connect(
          {
            onPodEvent: async (_method, seen) => {
              if (seen.id === "unanswered-1") await sleep(1200);
            },
            plugin: { failRequests: true },
          },
          { requestTimeoutMs: 400 },
        );
        plugin!.start();
        await plugin!.whenConnected();
        const run = peer.command("runPod", { pod: pod("unanswered-1") });
        if (version === "v0.12") await assert.rejects(run, /plugin 10-netclaim failed to handle RunPodSandbox/);
        else await run;
      },
    );

    it("reconnects to a restarted runtime without restarting the process", async () => {
      const { peer: first, recording } = await connect();
      plugin!.start();
      await plugin!.whenConnected();
      const back = reconnected(plugin!);
      await first.kill();
      peer = await RuntimePeer.start(version, dir, { socketPath: first.socketPath });
      await back;
      await peer.nextEvent("sync");
      await peer.command("runPod", { pod: pod("after-restart") });
      assert.deepEqual(recording.events.map((e) => e.pod.id), ["after-restart"]);
      assert.equal(recording.syncs.length, 2);
    });

    it("sends UpdateContainers requested inside a handler once the handler has returned", async () => {
      let update: Promise<string[]> | undefined;
      const { peer } = await connect({
        onPodEvent: (_method, seen) => {
          // Not awaited: the runtime holds its lock until this handler returns.
          update = plugin!.updateContainers([{ containerId: `ctr-of-${seen.id}` }]);
        },
      });
      plugin!.start();
      await plugin!.whenConnected();
      await peer.command("runPod", { pod: pod("upd-1") });
      assert.deepEqual(await update, [], "the runtime reports no failed updates");
      const event = await peer.nextEvent("updateContainers");
      assert.deepEqual(event.updates, ["ctr-of-upd-1"]);
      assert.equal(plugin!.state, "connected");
    });
  });
}
