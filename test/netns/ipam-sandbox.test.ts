// IPAM plugins named by a tenant's NetworkAttachmentDefinition, through the
// real NetworkPreparer, on the real kernel: a refused type never runs, an
// allowed one that misbehaves acts on netclaim's own empty namespace and
// never on the host, and one that runs too long or prints too much is
// killed with its children. Root only. The test process runs in a network
// namespace of its own that plays the host (isolateHostNetwork), and that
// "host" is dumped whole before and after: it must not change by one byte.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { chmod, mkdtemp, rm, stat, statfs, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { z } from "zod";
import { NetworkPreparer, type ClaimForPrepare } from "../../src/claims/preparer.ts";
import { CniError, IpamRunner, IpamSandbox, type IpamPolicy } from "../../src/cni/index.ts";
import { StateStore } from "../../src/store/index.ts";
import { processesWith, rejectsWith } from "../fixtures/assertions.ts";
import { changedParts, hostState, isolateHostNetwork } from "./host-state.ts";
import { tryIp, uniq } from "./helpers.ts";

isolateHostNetwork();

const DRIVER = "netclaim.dev";
const NSFS_MAGIC = 0x6e736673;
const POLICY: IpamPolicy = { allowedTypes: ["host-local", "whereabouts", "static"], allowedPathPrefixes: ["/var/lib/cni/networks/"], allowCrossNamespace: false };
/** The real containernetworking plugins (hack/host-deps/netns.txt). */
const REAL_PLUGINS = "/usr/lib/cni";

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function openSandbox(): Promise<IpamSandbox> {
  const sandbox = await IpamSandbox.open(join(await tempDir("nc-ipam-sandbox-"), "ipam"));
  cleanups.push(() => {
    sandbox.close();
  });
  return sandbox;
}

/** Shell scripts standing in for plugins, under the names of allowed types. */
async function pluginDir(scripts: Record<string, string>): Promise<string> {
  const dir = await tempDir("nc-ipam-plugins-");
  for (const [type, body] of Object.entries(scripts)) {
    await writeFile(join(dir, type), `#!/bin/sh\n${body}\n`);
    await chmod(join(dir, type), 0o755);
  }
  return dir;
}

async function preparerFor(options: { sandbox: IpamSandbox; pluginDirs: readonly string[]; nads: Record<string, string>; timeoutMs?: number }) {
  const store = await StateStore.open(await tempDir("nc-ipam-store-"));
  const preparer = new NetworkPreparer({
    driverName: DRIVER,
    poolName: "worker-1",
    devices: { find: () => ({ ifName: "ens3f1", ifIndex: 8 }) },
    nads: {
      config: (namespace, name) => {
        const config = options.nads[`${namespace}/${name}`];
        return config === undefined ? Promise.reject(new Error(`networkattachmentdefinitions "${name}" not found`)) : Promise.resolve(config);
      },
    },
    cdi: { write: () => Promise.resolve(new Map()), remove: () => Promise.resolve() },
    store,
    ipam: new IpamRunner({ pluginDirs: options.pluginDirs, sandbox: options.sandbox, policy: POLICY, timeoutMs: options.timeoutMs ?? 10_000 }),
    runtimeConnected: () => true,
    logger: pino({ level: "silent" }),
  });
  return { preparer, leases: () => store.collection("ipam-leases", z.unknown()).list() };
}

function claimUsing(nad: string, uid = `uid-${uniq()}`): ClaimForPrepare {
  return {
    ref: { namespace: "tenant", name: "web-0-nic", uid },
    results: [{ request: "nic", driver: DRIVER, pool: "worker-1", device: "pci-0000-03-00-1" }],
    config: [{ source: "FromClaim", requests: [], driver: DRIVER, parameters: { apiVersion: "netclaim.dev/v1alpha1", kind: "NetworkConfig", ipamFrom: { name: nad } } }],
    reservedFor: [{ resource: "pods", apiGroup: "", name: "web-0", uid: "pod-uid" }],
  };
}

function tryKillGroup(pid: number | undefined): void {
  try {
    if (pid !== undefined) process.kill(-pid, "SIGKILL");
  } catch {
    // Gone already.
  }
}

function inNetns(netns: string, ...command: string[]): string {
  return execFileSync("nsenter", [`--net=${netns}`, ...command], { encoding: "utf8" });
}

describe("IpamSandbox", () => {
  it("pins an empty namespace of its own, reuses it, and makes it again once unmounted", async () => {
    const dir = join(await tempDir("nc-ipam-sandbox-"), "ipam");
    const first = await IpamSandbox.open(dir);
    cleanups.push(() => {
      first.close();
    });
    assert.equal((await statfs(first.netns)).type, NSFS_MAGIC);
    const [pinned, host] = await Promise.all([stat(first.netns), stat("/proc/self/ns/net")]);
    assert.notEqual(pinned.ino, host.ino, "not the host's namespace");
    assert.deepEqual((JSON.parse(inNetns(first.netns, "ip", "-j", "link", "show")) as { ifname: string }[]).map((l) => l.ifname), ["lo"]);
    assert.equal((await stat(first.workDir)).isDirectory(), true);

    const again = await IpamSandbox.open(dir);
    assert.equal((await stat(again.netns)).ino, pinned.ino, "a restarted agent reuses the namespace");

    // As after a container restart: the file is there, the mount is gone.
    first.close();
    assert.notEqual((await statfs(first.netns)).type, NSFS_MAGIC);
    const remade = await IpamSandbox.open(dir);
    assert.equal((await statfs(remade.netns)).type, NSFS_MAGIC);
    remade.close();
    remade.close(); // already unmounted: not an error
  });

  it("kills, on open, the plugins a previous agent left running there with what they started, and nothing else", async () => {
    const dir = join(await tempDir("nc-ipam-sandbox-"), "ipam");
    const first = await IpamSandbox.open(dir);
    cleanups.push(() => {
      first.close();
    });
    assert.deepEqual(first.killedAtOpen, []);
    const marker = `nc-ipam-orphan-${uniq()}`;
    // As exec.ts runs a plugin: a process group of its own, in the sandbox's
    // working directory; one child stays there, one moves away.
    const plugin = spawn("sh", ["-c", `sleep 300 & (cd / && exec sh -c 'sleep 301; :' ${marker}-moved) & sleep 302; :`, `${marker}-plugin`], { cwd: first.workDir, detached: true, stdio: "ignore" });
    const bystander = spawn("sh", ["-c", "sleep 303; :", `${marker}-bystander`], { cwd: tmpdir(), detached: true, stdio: "ignore" });
    cleanups.push(() => {
      for (const child of [plugin, bystander]) tryKillGroup(child.pid);
    });
    for (let tries = 0; (await processesWith(marker)).length < 3; tries++) {
      assert.ok(tries < 250, "the stand-in plugin did not start its children");
      await sleep(20);
    }

    const restarted = await IpamSandbox.open(dir);
    // The plugin and the child still in its directory; the one that moved away goes with their group.
    assert.deepEqual(new Set(restarted.killedAtOpen.map((l) => l.pgid)), new Set([plugin.pid]));
    assert.ok(restarted.killedAtOpen.some((l) => l.pid === plugin.pid && l.command.includes(`${marker}-plugin`)));
    // Its whole group is gone at once: open() waited for it.
    assert.deepEqual((await processesWith(marker)).map((p) => p.replace(/^\d+: /, "").trim()), [`sh -c sleep 303; : ${marker}-bystander`]);
  });

  it("refuses a file that holds the agent's own namespace", async () => {
    const dir = join(await tempDir("nc-ipam-sandbox-"), "ipam");
    const first = await IpamSandbox.open(dir);
    first.close();
    execFileSync("mount", ["--bind", "/proc/self/ns/net", first.netns]);
    cleanups.push(() => {
      first.close();
    });
    await assert.rejects(IpamSandbox.open(dir), (err: unknown) => {
      assert.ok(err instanceof CniError);
      assert.equal(err.code, "CNI_SANDBOX");
      assert.match(err.message, /holds the agent's own network namespace/);
      return true;
    });
  });
});

describe("IPAM plugins from a tenant's NetworkAttachmentDefinition", () => {
  let sandbox: IpamSandbox;
  before(async () => {
    sandbox = await openSandbox();
  });

  // done-when 1: the real bridge plugin would make its bridge on the host if it ran.
  for (const type of ["bridge", "tuning", "portmap"]) {
    it(`refuses ipam type ${type} before anything runs, and the host does not change`, async () => {
      const bridge = `nctbr${uniq()}`;
      cleanups.push(() => {
        tryIp("link", "del", bridge);
      });
      const nad = JSON.stringify({ cniVersion: "1.0.0", name: "evil", type: "macvlan", bridge, ipam: { type, subnet: "198.51.100.0/24" } });
      const { preparer, leases } = await preparerFor({ sandbox, pluginDirs: [REAL_PLUGINS], nads: { "tenant/evil": nad } });
      const hostBefore = hostState();
      await assert.rejects(
        preparer.prepare(claimUsing("evil"), AbortSignal.timeout(10_000)),
        rejectsWith("IPAM_NOT_ALLOWED", new RegExp(`NetworkAttachmentDefinition tenant/evil for IPAM: spec\\.config\\.ipam\\.type is "${type}", which is not an allowed IPAM plugin type; .*cni\\.ipam\\.allowedTypes`)),
      );
      assert.deepEqual(changedParts(hostBefore, hostState()), []);
      assert.deepEqual(await leases(), []);
    });
  }

  // done-when 2: an allowed type whose binary acts on CNI_NETNS.
  it("gives an allowed plugin netclaim's namespace, so what it does there never reaches the host", async () => {
    const link = `nctip${uniq()}`;
    const script = [
      'if [ "$CNI_COMMAND" = ADD ]; then',
      `  nsenter --net="$CNI_NETNS" ip link add ${link}a type veth peer name ${link}b || exit 1`,
      '  nsenter --net="$CNI_NETNS" sh -c "echo 2 > /proc/sys/net/ipv4/conf/all/arp_ignore" || exit 1',
      '  echo \'{"cniVersion":"1.0.0","ips":[{"address":"198.51.100.7/24"}]}\'',
      "fi",
    ].join("\n");
    const plugins = await pluginDir({ "host-local": script });
    cleanups.push(() => {
      tryIp("link", "del", `${link}a`);
    });
    const nad = JSON.stringify({ cniVersion: "1.0.0", name: "pool", type: "macvlan", ipam: { type: "host-local", dataDir: "/var/lib/cni/networks" } });
    const { preparer, leases } = await preparerFor({ sandbox, pluginDirs: [plugins], nads: { "tenant/pool": nad } });
    const hostBefore = hostState();
    const claim = claimUsing("pool");
    const plan = await preparer.prepare(claim, AbortSignal.timeout(10_000));
    assert.deepEqual(changedParts(hostBefore, hostState()), []);
    assert.deepEqual(plan.devices[0]?.interface.addresses, ["198.51.100.7/24"]);
    const inSandbox = JSON.parse(inNetns(sandbox.netns, "ip", "-j", "link", "show")) as { ifname: string }[];
    assert.ok(inSandbox.some((l) => l.ifname === `${link}a`), "the plugin's link is in netclaim's namespace");
    assert.equal(inNetns(sandbox.netns, "cat", "/proc/sys/net/ipv4/conf/all/arp_ignore").trim(), "2");
    await preparer.unprepare(claim.ref.uid, plan, AbortSignal.timeout(10_000));
    assert.deepEqual(await leases(), []);
  });

  it("kills a plugin that runs past the time limit, with what it started, and releases its lease", async () => {
    const marker = `nc-ipam-leftover-${uniq()}`;
    const plugins = await pluginDir({ whereabouts: `[ "$CNI_COMMAND" = ADD ] || exit 0\nsh -c 'sleep 300; :' ${marker} &\nsleep 300; :` });
    const nad = JSON.stringify({ cniVersion: "1.0.0", name: "slow", type: "macvlan", ipam: { type: "whereabouts", range: "198.51.100.0/24" } });
    const { preparer, leases } = await preparerFor({ sandbox, pluginDirs: [plugins], nads: { "tenant/slow": nad }, timeoutMs: 500 });
    const hostBefore = hostState();
    await assert.rejects(
      preparer.prepare(claimUsing("slow"), AbortSignal.timeout(10_000)),
      rejectsWith("IPAM_FAILED", /IPAM from tenant\/slow for device pci-0000-03-00-1 \(request nic\) failed: CNI plugin whereabouts ADD .* ran longer than 0\.5 s, the limit set by cni\.ipam\.timeoutSeconds, and was killed/),
    );
    assert.deepEqual(await processesWith(marker), []);
    assert.deepEqual(await processesWith(plugins), []);
    assert.deepEqual(await leases(), []);
    assert.deepEqual(changedParts(hostBefore, hostState()), []);
  });

  it("kills a plugin that prints more than the output cap", async () => {
    const plugins = await pluginDir({ static: `[ "$CNI_COMMAND" = ADD ] || exit 0\nhead -c 2000000 /dev/zero | tr '\\0' x\nsleep 300; :` });
    const nad = JSON.stringify({ cniVersion: "1.0.0", name: "loud", type: "macvlan", ipam: { type: "static", addresses: [{ address: "198.51.100.7/24" }] } });
    const { preparer, leases } = await preparerFor({ sandbox, pluginDirs: [plugins], nads: { "tenant/loud": nad } });
    await assert.rejects(
      preparer.prepare(claimUsing("loud"), AbortSignal.timeout(10_000)),
      rejectsWith("IPAM_FAILED", /IPAM from tenant\/loud .* failed: CNI plugin static ADD .* printed more than 1048576 bytes on stdout, netclaim's fixed limit, and was killed/),
    );
    assert.deepEqual(await processesWith(plugins), []);
    assert.deepEqual(await leases(), []);
  });
});
