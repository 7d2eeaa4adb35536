/**
 * Pre-launched mode: the runtime starts the plugin from its plugin directory
 * and hands it a socket as fd 3 with NRI_PLUGIN_{SOCKET,NAME,IDX} and nothing
 * else in the environment.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { NRI_VERSIONS, RuntimePeer, removeDir, runtimePeerBinary, shortTempDir } from "./runtime-peer.ts";

const fixture = fileURLToPath(new URL("fixtures/prelaunched-plugin.ts", import.meta.url));

async function readEntries(file: string, until: (entries: Record<string, unknown>[]) => boolean): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const entries = existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
    if (until(entries)) return entries;
    if (Date.now() > deadline) throw new Error(`pre-launched plugin wrote only: ${JSON.stringify(entries)}`);
    await sleep(25);
  }
}

for (const version of NRI_VERSIONS) {
  describe(`pre-launched NRI plugin under the ${version} runtime`, () => {
    let dir: string;
    before(() => {
      runtimePeerBinary(version);
      dir = shortTempDir();
    });
    after(() => {
      removeDir(dir);
    });

    it("registers over fd 3 with the runtime's name and index, gets its config and serves events", async () => {
      const plugins = `${dir}/plugins`;
      const out = `${dir}/events.jsonl`;
      mkdirSync(plugins);
      // The runtime passes no PATH: the wrapper names node and the script absolutely.
      writeFileSync(`${plugins}/10-netclaim`, `#!/bin/sh\nexec ${process.execPath} ${fixture} ${out}\n`);
      chmodSync(`${plugins}/10-netclaim`, 0o755);
      writeFileSync(`${plugins}/10-netclaim.conf`, "mode: test\n");
      const peer = await RuntimePeer.start(version, dir, { pluginPath: plugins });
      try {
        const connected = await readEntries(out, (e) => e.some((x) => x.event === "connected"));
        assert.deepEqual(connected.find((x) => x.event === "connected"), { event: "connected", transport: "pre-launched", config: "mode: test\n", name: "10-netclaim" });
        await peer.command("runPod", { pod: { id: "pre-1", uid: "u", name: "n", namespace: "ns", netns: "/var/run/netns/cni-pre-1" } });
        const served = await readEntries(out, (e) => e.some((x) => x.event === "runPodSandbox"));
        assert.deepEqual(served.find((x) => x.event === "runPodSandbox"), { event: "runPodSandbox", id: "pre-1", netnsPath: "/var/run/netns/cni-pre-1" });
      } finally {
        await peer.stop(); // kills the plugin process, as runtimes do
      }
    });
  });
}
