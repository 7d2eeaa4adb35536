/**
 * No daemon that hack/ starts keeps a lock it did not take for itself: the
 * suites and CI serialize on `flock <file> make ...`, and node.sh on its own
 * fd 9 lock, so a daemon that inherited such a descriptor would hold the lock
 * for as long as it lives and every later locker would wait forever.
 * hack/lib/fds.sh's start_daemon is the one way hack/ starts one (etcd, the
 * API server, scheduler and controller manager in hack/cluster/cluster.sh,
 * containerd and the kubelet in hack/node/node.sh); these
 * tests run the real function under a lock and check what the daemon holds.
 * Plain shell, no root.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, readdir, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const repo = new URL("../../", import.meta.url).pathname;
const fds = join(repo, "hack/lib/fds.sh");

/** Exit status of `flock -n <file> true`: 0 when nobody holds the lock. */
async function lockFree(file: string): Promise<boolean> {
  try {
    await run("flock", ["-n", file, "true"]);
    return true;
  } catch {
    return false;
  }
}

async function pidOf(pidfile: string): Promise<number> {
  const pid = Number((await readFile(pidfile, "utf8")).trim());
  assert.ok(Number.isInteger(pid) && pid > 0, `pid file ${pidfile}: ${pid}`);
  return pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("hack/lib/fds.sh start_daemon", () => {
  let dir = "";
  const pids: number[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nc-daemon-fds-"));
  });
  after(async () => {
    for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs `script` (bash, fds.sh sourced) under `flock <lock>`, which its children inherit, and returns the daemon's pid once the script exited. */
  async function startUnderLock(name: string, script: string): Promise<{ lock: string; pid: number }> {
    const lock = join(dir, `${name}.lock`);
    const pidfile = join(dir, `${name}.pid`);
    // No -o: the command, and whatever it starts, inherits the locked descriptor.
    await run("flock", [lock, "bash", "-euo", "pipefail", "-c", `source "$0"; ${script}`, fds], {
      env: { ...process.env, PIDFILE: pidfile, LOGFILE: join(dir, `${name}.log`) },
    });
    const pid = await pidOf(pidfile);
    pids.push(pid);
    return { lock, pid };
  }

  it("leaves a caller's flock lock free while the daemon runs", async () => {
    const { lock, pid } = await startUnderLock("flock", 'start_daemon "$PIDFILE" "$LOGFILE" sleep 60');
    assert.ok(alive(pid), "the daemon runs on after its starter exited");
    assert.ok(await lockFree(lock), "the daemon holds the caller's lock");
    // stdio only, and stdin not the caller's.
    const open = (await readdir(`/proc/${pid}/fd`)).map(Number).sort((a, b) => a - b);
    assert.deepEqual(open, [0, 1, 2]);
    assert.equal(await readlink(`/proc/${pid}/fd/0`), "/dev/null");
    // Not the caller's directory, which may be a checkout deleted while the daemon lives.
    assert.equal(await readlink(`/proc/${pid}/cwd`), "/");
  });

  it("leaves a lock on a descriptor the starter took itself free (node.sh's fd 9), through setsid and env as node.sh starts containerd and the kubelet", async () => {
    const own = join(dir, "node.sh.lock");
    const { pid } = await startUnderLock(
      "own",
      `exec 9>>"${own}"; flock 9; start_daemon "$PIDFILE" "$LOGFILE" env PATH="$PATH" setsid sleep 60`,
    );
    assert.ok(alive(pid));
    assert.ok(await lockFree(own), "the daemon holds its starter's fd 9 lock");
  });

  it("is needed: a daemon started with a plain & keeps the caller's lock", async () => {
    const { lock, pid } = await startUnderLock("plain", 'sleep 60 >/dev/null 2>&1 & echo $! >"$PIDFILE"');
    assert.ok(alive(pid));
    assert.equal(await lockFree(lock), false, "this check cannot see an inherited lock");
    process.kill(pid, "SIGKILL");
  });

  it("is how every script in hack/ starts a background process", async () => {
    const { stdout } = await run("git", ["ls-files", "--cached", "--others", "--exclude-standard", "hack/**.sh", "hack/*.sh", ".ci/run"], { cwd: repo });
    const files = stdout.split("\n").filter(Boolean);
    assert.ok(files.includes("hack/cluster/cluster.sh") && files.includes("hack/node/node.sh"), files.join(" "));
    // A command put in the background: `&` at the end of a line or before `;`, not part of &&, >&, &>, <& or |&.
    const background = /(?<![&><|])&\s*(;|#.*)?$/;
    const offenders: string[] = [];
    for (const file of files) {
      if (file === "hack/lib/fds.sh") continue;
      const lines = (await readFile(join(repo, file), "utf8")).split("\n");
      lines.forEach((line, i) => {
        if (!line.trimStart().startsWith("#") && background.test(line)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    assert.deepEqual(offenders, [], "start daemons with start_daemon (hack/lib/fds.sh)");
    for (const file of ["hack/cluster/cluster.sh", "hack/node/node.sh"]) {
      assert.match(await readFile(join(repo, file), "utf8"), /start_daemon /, `${file} starts its daemons with start_daemon`);
    }
  });
});
