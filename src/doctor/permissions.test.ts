// The table doctor asks about and the ClusterRoles users apply must not
// drift apart: a verb added to one and not the other fails here.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { grantedPermissions, permission } from "../../test/verify/rbac-usage.ts";
import { AGENT_PERMISSIONS } from "./permissions.ts";

const repo = new URL("../../", import.meta.url).pathname;

async function granted(file: string): Promise<string[]> {
  return [...grantedPermissions(await readFile(`${repo}${file}`, "utf8"))].sort();
}

function table(when: "networkStatus" | undefined): string[] {
  return AGENT_PERMISSIONS.filter((p) => p.when === when)
    .map((p) => permission(p.group, p.subresource === undefined ? p.resource : `${p.resource}/${p.subresource}`, p.verb))
    .sort();
}

describe("AGENT_PERMISSIONS", () => {
  it("AGENT_PERMISSIONS is what deploy/base/rbac.yaml grants", async () => {
    assert.deepEqual(table(undefined), await granted("deploy/base/rbac.yaml"));
  });

  it("AGENT_PERMISSIONS with networkStatus on is what deploy/base/rbac.yaml and the network-status component grant", async () => {
    const withComponent = new Set([...(await granted("deploy/base/rbac.yaml")), ...(await granted("deploy/components/network-status/rbac.yaml"))]);
    assert.deepEqual([...table(undefined), ...table("networkStatus")].sort(), [...withComponent].sort());
  });

  it("AGENT_PERMISSIONS says why the agent needs each one", () => {
    for (const p of AGENT_PERMISSIONS) assert.ok(p.why.length > 10, `${p.verb} ${p.resource}`);
  });
});
