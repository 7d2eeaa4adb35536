// The bounds of a plugin run, with shell scripts standing in for plugins.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CniError, execCniPlugin, MAX_STDERR_BYTES, MAX_STDOUT_BYTES, type CniInvocation } from "./index.ts";
import { processesWith } from "../../test/fixtures/assertions.ts";

async function plugin(script: string): Promise<{ dir: string; invocation: CniInvocation }> {
  const dir = await mkdtemp(join(tmpdir(), "netclaim-exec-"));
  await writeFile(join(dir, "stand-in"), `#!/bin/sh\n${script}\n`);
  await chmod(join(dir, "stand-in"), 0o755);
  const invocation: CniInvocation = {
    type: "stand-in",
    command: "ADD",
    containerId: "claim-dev",
    netns: "/nonexistent",
    ifName: "nc0",
    config: { cniVersion: "1.0.0", name: "n" },
    pluginDirs: [dir],
    workDir: dir,
    timeoutMs: 10_000,
  };
  return { dir, invocation };
}

function killedFor(pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof CniError, `expected a CniError, got ${String(err)}`);
    assert.equal(err.code, "CNI_LIMIT");
    assert.equal(err.plugin, "stand-in");
    assert.match(err.message, pattern);
    return true;
  };
}

describe("execCniPlugin bounds", () => {
  it("kills a plugin that runs too long, and the children it started", async () => {
    const marker = `nc-leftover-${process.pid}-timeout`;
    const { invocation } = await plugin(`sh -c 'sleep 300; :' ${marker} &\nsleep 300; :`);
    const started = Date.now();
    await assert.rejects(
      execCniPlugin({ ...invocation, timeoutMs: 300 }),
      killedFor(/^CNI plugin stand-in ADD \(container claim-dev, interface nc0\) ran longer than 0\.3 s, the limit set by cni\.ipam\.timeoutSeconds, and was killed$/),
    );
    assert.ok(Date.now() - started < 5_000);
    assert.deepEqual(await processesWith(marker), []);
  });

  it("kills a plugin that prints more than the stdout cap", async () => {
    const { dir, invocation } = await plugin(`head -c ${MAX_STDOUT_BYTES + 1} /dev/zero | tr '\\0' x\nsleep 300; :`);
    await assert.rejects(execCniPlugin(invocation), killedFor(new RegExp(`printed more than ${MAX_STDOUT_BYTES} bytes on stdout`)));
    assert.deepEqual(await processesWith(dir), []);
  });

  it("kills a plugin that prints more than the stderr cap", async () => {
    const { invocation } = await plugin(`head -c ${MAX_STDERR_BYTES + 1} /dev/zero | tr '\\0' x >&2\nsleep 300; :`);
    await assert.rejects(execCniPlugin(invocation), killedFor(new RegExp(`printed more than ${MAX_STDERR_BYTES} bytes on stderr`)));
  });

  it("takes output up to the cap", async () => {
    const padding = MAX_STDOUT_BYTES - 100;
    const { invocation } = await plugin(`printf '{"cniVersion":"1.0.0","ips":[],"pad":"'\nhead -c ${padding} /dev/zero | tr '\\0' x\nprintf '"}'`);
    assert.deepEqual(Object.keys((await execCniPlugin(invocation)) as object), ["cniVersion", "ips", "pad"]);
  });

  it("kills a plugin when the caller gives up", async () => {
    const marker = `nc-leftover-${process.pid}-cancel`;
    const { invocation } = await plugin(`sh -c 'sleep 300; :' ${marker} &\nsleep 300; :`);
    await assert.rejects(execCniPlugin({ ...invocation, signal: AbortSignal.timeout(200) }), { code: "CNI_CANCELLED" });
    assert.deepEqual(await processesWith(marker), []);
  });

  it("runs the plugin in the working directory it is given", async () => {
    const { dir, invocation } = await plugin(`printf '{"cwd":"%s"}' "$(pwd)"`);
    assert.deepEqual(await execCniPlugin(invocation), { cwd: dir });
  });
});
