/**
 * deploy/node-setup ships one CRI-O drop-in twice: as a file, and inside
 * OpenShift's MachineConfig. They must say the same.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { z } from "zod";

const repo = new URL("../../", import.meta.url).pathname;

const machineConfigSchema = z.object({
  kind: z.literal("MachineConfig"),
  spec: z.object({
    config: z.object({ storage: z.object({ files: z.array(z.object({ path: z.string(), contents: z.object({ source: z.string() }) })) }) }),
  }),
});

describe("deploy/node-setup", () => {
  it("writes the CRI-O drop-in on OpenShift as it is shipped for other nodes", async () => {
    const dropIn = await readFile(`${repo}deploy/node-setup/cri-o/99-netclaim-nri.conf`, "utf8");
    const machineConfig = machineConfigSchema.parse(parse(await readFile(`${repo}deploy/node-setup/openshift/99-worker-netclaim-nri.yaml`, "utf8")));
    const [file, ...others] = machineConfig.spec.config.storage.files;
    assert.equal(others.length, 0);
    assert.equal(file?.path, "/etc/crio/crio.conf.d/99-netclaim-nri.conf");
    assert.ok(file.contents.source.startsWith("data:,"));
    const written = decodeURIComponent(file.contents.source.slice("data:,".length));
    const settings = (text: string): string => text.split("\n").filter((line) => !line.startsWith("#")).join("\n");
    assert.equal(written, settings(dropIn));
    assert.match(written, /\[crio\.nri\.default_validator\]\nnri_enable_default_validator = true/);
  });
});
