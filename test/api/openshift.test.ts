/**
 * deploy/overlays/openshift as an OpenShift API server takes it: OpenShift's
 * CRDs (SecurityContextConstraints, MachineConfig, ContainerRuntimeConfig;
 * hack/openshift/crds.sh) and the built-in `privileged` SCC with its
 * `system:openshift:scc:privileged` ClusterRole are installed in the test
 * control plane, then the overlay is applied server-side, as
 * docs/install.md says. The DaemonSet goes through a server-side dry run
 * only: its pods would otherwise land on every node of the shared cluster,
 * the e2e node included, with OpenShift's host paths. The MachineConfig that
 * turns NRI on in CRI-O is validated by the MachineConfig CRD.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { parseAllDocuments, stringify } from "yaml";
import { cluster, type Cluster } from "./harness.ts";

const repo = new URL("../../", import.meta.url).pathname;
const run = promisify(execFile);

/** The SCC an OpenShift cluster has built in, with the fields its CRD requires, and the ClusterRole to use it. */
const builtIns = [
  {
    apiVersion: "security.openshift.io/v1",
    kind: "SecurityContextConstraints",
    metadata: { name: "privileged" },
    allowHostDirVolumePlugin: true,
    allowHostIPC: true,
    allowHostNetwork: true,
    allowHostPID: true,
    allowHostPorts: true,
    allowPrivilegedContainer: true,
    allowedCapabilities: ["*"],
    defaultAddCapabilities: null,
    priority: null,
    readOnlyRootFilesystem: false,
    requiredDropCapabilities: null,
    runAsUser: { type: "RunAsAny" },
    seLinuxContext: { type: "RunAsAny" },
    volumes: ["*"],
  },
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: "system:openshift:scc:privileged" },
    rules: [{ apiGroups: ["security.openshift.io"], resources: ["securitycontextconstraints"], resourceNames: ["privileged"], verbs: ["use"] }],
  },
];

type Json = Record<string, unknown>;

describe("the OpenShift overlay applied server-side to an API server with OpenShift's CRDs", { timeout: 300_000 }, () => {
  let c: Cluster;
  let crdDir: string;
  let objects: Json[];
  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const child = run(c.kubectl, ["--kubeconfig", c.kubeconfig, ...args], { maxBuffer: 16 << 20 });
    if (input !== undefined) child.child.stdin?.end(input);
    return (await child).stdout;
  };
  const asList = (items: Json[]): string => JSON.stringify({ apiVersion: "v1", kind: "List", items });

  before(async () => {
    c = await cluster();
    crdDir = (await run(join(repo, "hack/openshift/crds.sh"))).stdout.trim();
    const crds = (await readdir(crdDir)).filter((name) => name.endsWith(".crd.yaml")).map((name) => join(crdDir, name));
    await kubectl(["apply", "--server-side", ...crds.flatMap((path) => ["-f", path])]);
    await kubectl(["wait", "--for", "condition=Established", "--timeout", "60s", ...crds.flatMap((path) => ["-f", path])]);
    await kubectl(["apply", "--server-side", "-f", "-"], asList(builtIns));
    const built = await kubectl(["kustomize", join(repo, "deploy/overlays/openshift")]);
    objects = parseAllDocuments(built).flatMap((doc) => (doc.contents === null ? [] : [doc.toJS() as Json]));
    // The Kubernetes overlay's objects (test/api's harness applies them) are another
    // installation: delete them first, as docs/install.md says for switching installations.
    await kubectl(["delete", "--ignore-not-found", "--wait", "--timeout", "180s", "-k", join(repo, "deploy/overlays/kubernetes")]);
  });

  after(async () => {
    await kubectl(["delete", "--ignore-not-found", "--wait", "--timeout", "180s", "-f", "-"], asList(objects.filter((o) => o["kind"] !== "DaemonSet")));
    await kubectl(["delete", "--ignore-not-found", "-f", "-"], asList(builtIns));
    const crds = (await readdir(crdDir)).filter((name) => name.endsWith(".crd.yaml")).map((name) => join(crdDir, name));
    await kubectl(["delete", "--ignore-not-found", ...crds.flatMap((path) => ["-f", path])]);
    // Put back what the other suites' harness expects to find.
    await kubectl(["apply", "-f", "-"], asList(parseAllDocuments(await kubectl(["kustomize", join(repo, "deploy/overlays/kubernetes")]))
      .flatMap((doc) => (doc.contents === null ? [] : [doc.toJS() as Json]))
      .filter((o) => o["kind"] !== "DaemonSet")));
  });

  it("applies server-side, and the API server accepts the DaemonSet", async () => {
    const daemonSets = objects.filter((o) => o["kind"] === "DaemonSet");
    assert.equal(daemonSets.length, 1);
    await kubectl(["apply", "--server-side", "--field-manager", "netclaim-install", "-f", "-"], asList(objects.filter((o) => o["kind"] !== "DaemonSet")));
    await kubectl(["apply", "--server-side", "--field-manager", "netclaim-install", "--dry-run=server", "-f", "-"], asList(daemonSets));
    const namespace = JSON.parse(await kubectl(["get", "namespace", "netclaim", "-o", "json"])) as { metadata: { labels: Record<string, string> } };
    assert.equal(namespace.metadata.labels["pod-security.kubernetes.io/enforce"], "privileged");
  });

  it("lets the agent's ServiceAccount use the privileged SCC in its namespace, and no other SCC", async () => {
    // What OpenShift's SCC admission asks the API server for a pod of the agent's: may its
    // ServiceAccount `use` the SCC in the pod's namespace (a RoleBinding grants it there).
    const mayUse = async (scc: string): Promise<boolean> => {
      const review = {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user: "system:serviceaccount:netclaim:netclaim-agent",
          groups: ["system:serviceaccounts", "system:serviceaccounts:netclaim"],
          resourceAttributes: { namespace: "netclaim", verb: "use", group: "security.openshift.io", resource: "securitycontextconstraints", name: scc },
        },
      };
      const answer = JSON.parse(await kubectl(["create", "-o", "json", "-f", "-"], JSON.stringify(review))) as { status: { allowed: boolean } };
      return answer.status.allowed;
    };
    assert.equal(await mayUse("privileged"), true);
    assert.equal(await mayUse("anyuid"), false);
  });

  it("has a MachineConfig for CRI-O's NRI that the MachineConfig CRD accepts", async () => {
    const machineConfig = join(repo, "deploy/node-setup/openshift/99-worker-netclaim-nri.yaml");
    const applied = await kubectl(["apply", "--server-side", "--dry-run=server", "-o", "yaml", "-f", machineConfig]);
    const [doc] = parseAllDocuments(applied);
    const files = ((doc?.toJS() as { spec: { config: { storage: { files: { path: string }[] } } } }).spec.config.storage.files).map((f) => f.path);
    assert.deepEqual(files, ["/etc/crio/crio.conf.d/99-netclaim-nri.conf"], stringify(files));
  });
});
