/**
 * deploy/required-plugin as the API server runs it, on the oldest (beta API,
 * behind its feature gate) and the newest (GA) supported control plane: every
 * pod created with resource claims comes out requiring netclaim's NRI plugin,
 * in the annotation form the runtime's validator reads and without losing a
 * plugin another driver's policy or the pod's author required; no other pod
 * is touched. The node suite (test/e2e) shows the runtime acting on it.
 *
 * Each run of the version matrix (the api and api-newest suites) checks its
 * own release: the harness applies the variant for it (requiredPluginVariant).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import { requiredPlugins } from "../../src/nri/index.ts";
import { k8sVersions } from "../fixtures/k8s-versions.ts";
import { admittedPod, cluster, type Cluster } from "./harness.ts";

const repo = new URL("../../", import.meta.url).pathname;

const KEY = "required-plugins.noderesource.dev/pod";

function pod(options: { claims: boolean; annotations?: Record<string, string> }): object {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { generateName: "required-plugin-", ...(options.annotations === undefined ? {} : { annotations: options.annotations }) },
    spec: {
      ...(options.claims ? { resourceClaims: [{ name: "nic", resourceClaimTemplateName: "nic" }] } : {}),
      containers: [{ name: "app", image: "netclaim.invalid/app:test", ...(options.claims ? { resources: { claims: [{ name: "nic" }] } } : {}) }],
    },
  };
}

describe(`the required-plugin admission policy on the ${k8sVersions().current} control plane`, () => {
  const admitted = async (options: { claims: boolean; annotations?: Record<string, string> }): Promise<Record<string, string>> => {
    const c: Cluster = await cluster();
    return (await admittedPod(c, "default", pod(options))).metadata.annotations ?? {};
  };

  it("makes a pod with claims require netclaim", async () => {
    const annotations = await admitted({ claims: true });
    assert.deepEqual(requiredPlugins(annotations), { kind: "listed", plugins: ["netclaim"], key: KEY });
  });

  it("leaves a pod without claims alone", async () => {
    assert.deepEqual(await admitted({ claims: false, annotations: { team: "a" } }), { team: "a" });
  });

  it("never marks netclaim's own pod, so the agent never waits for itself", async () => {
    const c = await cluster();
    const { stdout } = await promisify(execFile)(c.kubectl, ["kustomize", `${repo}deploy/overlays/kubernetes`]);
    const daemonSet = parseAllDocuments(stdout).map((d) => d.toJS() as { kind: string; spec: { template: { metadata: Record<string, unknown>; spec: unknown } } }).find((o) => o.kind === "DaemonSet");
    assert.ok(daemonSet !== undefined);
    const { template } = daemonSet.spec;
    const agentPod = { apiVersion: "v1", kind: "Pod", metadata: { ...template.metadata, name: "netclaim-agent-probe" }, spec: template.spec };
    const annotations = (await admittedPod(c, "netclaim", agentPod)).metadata.annotations ?? {};
    assert.equal(requiredPlugins(annotations).kind, "absent");
  });

  it("adds netclaim to the plugins another driver or the author required, in any list style", async () => {
    for (const listed of ['["sriov"]', "[sriov, gpu]", "- sriov", "[]", ""]) {
      const annotations = await admitted({ claims: true, annotations: { [KEY]: listed, team: "a" } });
      const previous = requiredPlugins({ [KEY]: listed });
      assert.ok(previous.kind === "listed");
      assert.deepEqual(requiredPlugins(annotations), { kind: "listed", plugins: [...previous.plugins, "netclaim"], key: KEY }, `from ${JSON.stringify(listed)}`);
      assert.equal(annotations["team"], "a");
    }
  });

  it("leaves a pod that already requires netclaim as it is", async () => {
    for (const listed of ['["netclaim"]', "- gpu\n- netclaim", "[netclaim, sriov]"]) {
      const annotations = await admitted({ claims: true, annotations: { [KEY]: listed } });
      assert.equal(annotations[KEY], listed);
    }
  });
});
