/**
 * deploy/helm/netclaim renders what the kustomize overlays do: with the
 * default values exactly the objects of `kubectl kustomize
 * deploy/overlays/kubernetes`, with `openshift=true` those of
 * deploy/overlays/openshift, and with `requiredPlugin.enabled` the policy of
 * deploy/required-plugin/<apiVersion> besides. Objects are compared whole,
 * keyed by kind, namespace and name, after two normalisations of the
 * kustomize side that do not change what is applied:
 *
 * - kustomize's namespace transformer writes `metadata.namespace` into
 *   cluster-scoped objects whose kind its schema does not know
 *   (ValidatingAdmissionPolicy, DeviceClass, ...); the API server ignores it,
 *   and the chart writes none;
 * - a strategic merge patch puts the entries it adds or replaces first in a
 *   list with a merge key, so the DaemonSet's `volumes` (name),
 *   `volumeMounts` (mountPath) and `env` (name) are compared as maps by those keys.
 *
 * helm comes from hack/helm/build.sh and kubectl from hack/cluster/build.sh
 * (the helm suite's prerequisites, mk/helm.mk; both print the cached path at once).
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { parseAllDocuments, parse } from "yaml";
import { z } from "zod";
import { parseAgentConfig } from "../../src/agent/config.ts";

const run = promisify(execFile);
const repo = new URL("../../", import.meta.url).pathname;
const chart = join(repo, "deploy/helm/netclaim");

function built(script: string): string {
  return execFileSync(join(repo, script), { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
}
const helm = built("hack/helm/build.sh");
const kubectl = join(built("hack/cluster/build.sh"), "kubectl");

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } } & Record<string, unknown>;

/** Kinds that have no namespace: the chart must write none, and kustomize's is dropped. */
const clusterScoped = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "ValidatingAdmissionPolicy",
  "ValidatingAdmissionPolicyBinding",
  "MutatingAdmissionPolicy",
  "MutatingAdmissionPolicyBinding",
  "DeviceClass",
]);

function objects(stream: string): Manifest[] {
  return parseAllDocuments(stream)
    .map((document) => {
      assert.equal(document.errors.length, 0, String(document.errors[0]));
      return document.toJS() as Manifest | null;
    })
    .filter((object): object is Manifest => object !== null);
}

const key = (object: Manifest): string => `${object.kind}/${object.metadata.namespace ?? ""}/${object.metadata.name}`;

function byKey(list: Manifest[]): Map<string, Manifest> {
  const map = new Map<string, Manifest>();
  for (const object of list) {
    assert.ok(!map.has(key(object)), `${key(object)} twice`);
    map.set(key(object), object);
  }
  return map;
}

/** Lists with a merge key as maps by that key; every other list keeps its order. */
function normalised(object: Manifest): unknown {
  const keyed: Record<string, string> = { volumes: "name", volumeMounts: "mountPath", env: "name" };
  const walk = (value: unknown, field?: string): unknown => {
    if (Array.isArray(value)) {
      const mergeKey = field === undefined ? undefined : keyed[field];
      if (mergeKey === undefined) return value.map((item) => walk(item));
      const entries = value.map((item) => [String((item as Record<string, unknown>)[mergeKey]), walk(item)] as const);
      assert.equal(new Set(entries.map(([k]) => k)).size, entries.length, `${field}: ${mergeKey} repeats`);
      return Object.fromEntries(entries.sort(([a], [b]) => a.localeCompare(b)));
    }
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, k)]));
    }
    return value;
  };
  return walk(object);
}

async function helmTemplate(...flags: string[]): Promise<Manifest[]> {
  const { stdout } = await run(helm, ["template", "netclaim", chart, ...flags]);
  return objects(stdout);
}

/**
 * The chart's objects as the Go YAML parser reads them (helm and kubectl both
 * use it), from kustomize with no transformers: it reads the folded CEL
 * expression of deploy/required-plugin (`Object{` followed by more-indented
 * lines) with a blank line after the first line, which the YAML 1.2 parser of
 * this test does not, so both sides are read by the same parser.
 */
async function helmTemplateAsGoReadsIt(...flags: string[]): Promise<Manifest[]> {
  const { stdout } = await run(helm, ["template", "netclaim", chart, ...flags]);
  const dir = await mkdtemp(join(tmpdir(), "netclaim-helm-"));
  try {
    await writeFile(join(dir, "chart.yaml"), stdout);
    await writeFile(join(dir, "kustomization.yaml"), "resources: [chart.yaml]\n");
    const read = await run(kubectl, ["kustomize", dir]);
    return objects(read.stdout);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function kustomize(...dirs: string[]): Promise<Manifest[]> {
  const built = await Promise.all(dirs.map((dir) => run(kubectl, ["kustomize", join(repo, dir)])));
  return built.flatMap(({ stdout }) => objects(stdout)).map((object) => {
    if (!clusterScoped.has(object.kind)) return object;
    const metadata = { ...object.metadata };
    delete metadata.namespace;
    return { ...object, metadata };
  });
}

/** `overlay` built with kustomize components, as a kustomization of a user's own uses them. */
async function kustomizeWithComponents(overlay: string, ...components: string[]): Promise<Manifest[]> {
  const dir = await mkdtemp(join(tmpdir(), "netclaim-kustomize-"));
  try {
    // kustomize takes no absolute paths to other kustomizations.
    const from = (path: string) => relative(dir, join(repo, path));
    await writeFile(join(dir, "kustomization.yaml"), JSON.stringify({ resources: [from(overlay)], components: components.map(from) }));
    return await kustomize(relative(repo, dir));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function assertSameObjects(rendered: Manifest[], expected: Manifest[]): void {
  const got = byKey(rendered);
  const want = byKey(expected);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), "the chart renders other objects than kustomize");
  for (const [name, object] of want) {
    assert.deepEqual(normalised(got.get(name) as Manifest), normalised(object), `${name} differs from kustomize's`);
  }
}

function find(list: Manifest[], kind: string, name: string): Manifest {
  const object = list.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(object, `no ${kind} ${name}`);
  return object;
}

const probeSchema = z.object({ exec: z.object({ command: z.array(z.string()) }), httpGet: z.unknown().optional() });
const daemonSetSchema = z.object({
  spec: z.object({
    template: z.object({
      spec: z.object({
        nodeSelector: z.record(z.string(), z.string()).optional(),
        tolerations: z.array(z.record(z.string(), z.string())).optional(),
        volumes: z.array(z.object({ name: z.string(), hostPath: z.object({ path: z.string() }).optional() })),
        containers: z
          .array(
            z.object({
              image: z.string(),
              imagePullPolicy: z.string().optional(),
              env: z.array(z.record(z.string(), z.unknown())),
              volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string(), mountPropagation: z.string().optional() })),
              readinessProbe: probeSchema.optional(),
              livenessProbe: probeSchema.optional(),
            }),
          )
          .length(1),
      }),
    }),
  }),
});

/** The DaemonSet's pod spec and its one container. */
function podOf(list: Manifest[]) {
  const spec = daemonSetSchema.parse(find(list, "DaemonSet", "netclaim-agent")).spec.template.spec;
  const [container] = spec.containers;
  assert.ok(container);
  return { spec, container };
}

function agentYaml(list: Manifest[]): string {
  return z.object({ data: z.object({ "agent.yaml": z.string() }) }).parse(find(list, "ConfigMap", "netclaim-agent-config")).data["agent.yaml"];
}

/** The DaemonSet's hostPath volumes and the container's mounts, each by volume name. */
function pathsOf(list: Manifest[]) {
  const { spec, container } = podOf(list);
  return {
    hostPaths: Object.fromEntries(spec.volumes.map((v) => [v.name, v.hostPath?.path])),
    mounts: Object.fromEntries(container.volumeMounts.map((m) => [m.name, m])),
  };
}

/** The runtime's paths on the test node (test/node), which keeps them all under /tmp/nc-node. */
const testNodeRuntime = [
  "--set", "nri.socketPath=/tmp/nc-node/run/nri.sock",
  "--set", "cdi.specDir=/tmp/nc-node/cdi/",
  "--set", "netns.dir=/tmp/nc-node/run/netns",
];

describe("deploy/helm/netclaim", () => {
  it("renders deploy/overlays/kubernetes with the default values", async () => {
    for (const object of await helmTemplate()) {
      assert.equal(object.metadata.namespace === undefined, clusterScoped.has(object.kind), `${key(object)}: namespace`);
    }
    assertSameObjects(await helmTemplateAsGoReadsIt(), await kustomize("deploy/overlays/kubernetes"));
  });

  it("renders deploy/overlays/openshift with openshift=true", async () => {
    assertSameObjects(await helmTemplateAsGoReadsIt("--set", "openshift=true"), await kustomize("deploy/overlays/openshift"));
  });

  for (const apiVersion of ["v1", "v1beta1"]) {
    it(`adds deploy/required-plugin/${apiVersion} with requiredPlugin.enabled`, async () => {
      assertSameObjects(
        await helmTemplateAsGoReadsIt("--set", "requiredPlugin.enabled=true", "--set", `requiredPlugin.apiVersion=${apiVersion}`),
        await kustomize("deploy/overlays/kubernetes", `deploy/required-plugin/${apiVersion}`),
      );
    });
  }

  for (const [overlay, flags] of [["kubernetes", []], ["openshift", ["--set", "openshift=true"]]] as const) {
    it(`adds deploy/components/network-status to deploy/overlays/${overlay} with networkStatus.enabled`, async () => {
      assertSameObjects(
        await helmTemplateAsGoReadsIt(...flags, "--set", "networkStatus.enabled=true"),
        await kustomizeWithComponents(`deploy/overlays/${overlay}`, "deploy/components/network-status"),
      );
    });
  }

  it("refuses a requiredPlugin.apiVersion the API does not serve", async () => {
    await assert.rejects(helmTemplate("--set", "requiredPlugin.enabled=true", "--set", "requiredPlugin.apiVersion=v1alpha1"), /must be v1 .* or v1beta1/);
  });

  it("applies the values for paths, port, image, placement and the device policy", async () => {
    const rendered = await helmTemplate(
      "--set", "kubelet.rootDir=/data/kubelet/",
      "--set", "cni.binDir=/usr/libexec/cni",
      "--set", "cni.confDir=/etc/cni/multus/net.d",
      "--set", "cni.stateDir=/data/cni",
      "--set", "http.port=9500",
      "--set", "image.repository=registry.example/netclaim",
      "--set", "image.tag=v9.9.9",
      "--set", "image.pullPolicy=Always",
      "--set-string", "nodeSelector.netclaim\\.dev/agent=true",
      "--set-json", 'tolerations=[{"key":"nics","operator":"Exists","effect":"NoSchedule"}]',
      "--set-json", 'devices={"include":[{"attributes":{"pciVendorID":"15b3","isSriovVf":true},"multusResourceName":"example.com/mlx-vf"}],"exclude":[{"ifName":"eno*"}]}',
      "--set-json", 'agentConfig={"log":{"level":"debug"},"kubelet":{"draVersions":["v1"]}}',
    );
    const { spec, container } = podOf(rendered);
    const hostPaths = Object.fromEntries(spec.volumes.map((v) => [v.name, v.hostPath?.path]));
    const mounts = Object.fromEntries(container.volumeMounts.map((m) => [m.name, m.mountPath]));
    assert.equal(hostPaths["kubelet-plugins"], "/data/kubelet/plugins");
    assert.equal(hostPaths["kubelet-registry"], "/data/kubelet/plugins_registry");
    assert.equal(mounts["kubelet-plugins"], "/data/kubelet/plugins");
    assert.equal(mounts["kubelet-registry"], "/data/kubelet/plugins_registry");
    assert.equal(hostPaths["cni-bin"], "/usr/libexec/cni");
    assert.equal(mounts["cni-bin"], "/opt/cni/bin");
    assert.equal(hostPaths["cni-conf"], "/etc/cni/multus/net.d");
    assert.equal(mounts["cni-conf"], "/etc/cni/multus/net.d");
    assert.equal(hostPaths["cni-state"], "/data/cni");
    assert.equal(mounts["cni-state"], "/var/lib/cni");
    assert.equal(container.image, "registry.example/netclaim:v9.9.9");
    assert.equal(container.imagePullPolicy, "Always");
    assert.deepEqual(spec.nodeSelector, { "netclaim.dev/agent": "true" });
    assert.deepEqual(spec.tolerations, [{ key: "nics", operator: "Exists", effect: "NoSchedule" }]);
    // The agent accepts the rendered AgentConfig, and it says what the values say.
    const config = parseAgentConfig(parse(agentYaml(rendered)), "agent.yaml");
    assert.equal(config.kubelet.rootDir, "/data/kubelet");
    assert.deepEqual(config.kubelet.draVersions, ["v1"]);
    assert.equal(config.http.port, 9500);
    assert.equal(config.log.level, "debug");
    assert.deepEqual(z.object({ devices: z.unknown() }).parse(parse(agentYaml(rendered))).devices, {
      include: [{ attributes: { pciVendorID: "15b3", isSriovVf: true }, multusResourceName: "example.com/mlx-vf" }],
      exclude: [{ ifName: "eno*" }],
    });
  });

  it("mounts the runtime's NRI socket, CDI spec and netns directories where the values put them", async () => {
    const rendered = await helmTemplate(
      ...testNodeRuntime,
      "--set-json", 'agentConfig={"nri":{"pluginName":"netclaim-test","socketPath":"/elsewhere/nri.sock"},"cdi":{"specDir":"/elsewhere/cdi"}}',
    );
    const { hostPaths, mounts } = pathsOf(rendered);
    // At the same path as on the host: the runtime hands out and reads host paths.
    assert.equal(hostPaths["nri"], "/tmp/nc-node/run");
    assert.deepEqual(mounts["nri"], { name: "nri", mountPath: "/tmp/nc-node/run" });
    assert.equal(hostPaths["cdi"], "/tmp/nc-node/cdi");
    assert.deepEqual(mounts["cdi"], { name: "cdi", mountPath: "/tmp/nc-node/cdi" });
    assert.equal(hostPaths["netns"], "/tmp/nc-node/run/netns");
    assert.deepEqual(mounts["netns"], { name: "netns", mountPath: "/tmp/nc-node/run/netns", mountPropagation: "HostToContainer" });
    // The values win over agentConfig's same fields; its other nri fields stay.
    const written = z.object({ nri: z.unknown(), cdi: z.unknown() }).parse(parse(agentYaml(rendered)));
    assert.deepEqual(written.nri, { pluginName: "netclaim-test", socketPath: "/tmp/nc-node/run/nri.sock" });
    assert.deepEqual(written.cdi, { specDir: "/tmp/nc-node/cdi" });
    const config = parseAgentConfig(parse(agentYaml(rendered)), "agent.yaml");
    assert.deepEqual(config.nri, { socketPath: "/tmp/nc-node/run/nri.sock", pluginName: "netclaim-test", pluginIndex: "10" });
    assert.equal(config.cdi.specDir, "/tmp/nc-node/cdi");
  });

  it("leaves the default runtime paths to the agent, over agentConfig's", async () => {
    const rendered = await helmTemplate(
      "--set-json", 'agentConfig={"nri":{"pluginName":"netclaim-test","socketPath":"/elsewhere/nri.sock"},"cdi":{"specDir":"/elsewhere/cdi"},"kubelet":{"rootDir":"/elsewhere"}}',
    );
    const written = z.record(z.string(), z.unknown()).parse(parse(agentYaml(rendered)));
    assert.deepEqual(written["nri"], { pluginName: "netclaim-test" });
    assert.equal(written["cdi"], undefined);
    assert.equal(written["kubelet"], undefined);
    const config = parseAgentConfig(written, "agent.yaml");
    assert.equal(config.nri.socketPath, "/var/run/nri/nri.sock");
    assert.equal(config.cdi.specDir, "/var/run/cdi");
    assert.equal(config.kubelet.rootDir, "/var/lib/kubelet");
    const { hostPaths, mounts } = pathsOf(rendered);
    assert.equal(hostPaths["nri"], "/var/run/nri");
    assert.equal(mounts["nri"]?.mountPath, "/var/run/nri");
  });

  it("refuses runtime paths that are not absolute or are /", async () => {
    await assert.rejects(helmTemplate("--set", "netns.dir=run/netns"), /netns\.dir must be an absolute path other than \//);
    await assert.rejects(helmTemplate("--set", "cdi.specDir=/"), /cdi\.specDir must be an absolute path other than \//);
    await assert.rejects(helmTemplate("--set", "nri.socketPath=nri.sock"), /nri\.socketPath's directory must be an absolute path/);
    await assert.rejects(helmTemplate("--set", "nri.socketPath=/nri.sock"), /nri\.socketPath's directory must be an absolute path/);
  });

  it("appends env to the agent container's environment", async () => {
    const extra = [
      { name: "KUBERNETES_SERVICE_HOST", value: "api.example.internal" },
      { name: "KUBERNETES_SERVICE_PORT", value: "6443" },
      { name: "HTTPS_PROXY", valueFrom: { secretKeyRef: { name: "proxy", key: "url" } } },
    ];
    const { container } = podOf(await helmTemplate("--set-json", `env=${JSON.stringify(extra)}`));
    assert.deepEqual(container.env, [
      { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
      { name: "POD_UID", valueFrom: { fieldRef: { fieldPath: "metadata.uid" } } },
      ...extra,
    ]);
    assert.deepEqual(podOf(await helmTemplate()).container.env.map((e) => e["name"]), ["NODE_NAME", "POD_UID"]);
  });

  it("writes an AgentConfig the agent accepts on both platforms", async () => {
    for (const flags of [[], ["--set", "openshift=true"], ["--set", "openshift=true", "--set-json", 'devices={"include":[{"ifName":"ens*"}]}']]) {
      parseAgentConfig(parse(agentYaml(await helmTemplate(...flags))), "agent.yaml");
    }
  });

  it("probes the pod's own agent through `netclaim probe`, whatever http.port is", async () => {
    for (const port of ["9402", "9500", "0"]) {
      const rendered = await helmTemplate("--set", `http.port=${port}`);
      assert.equal(parseAgentConfig(parse(agentYaml(rendered)), "agent.yaml").http.port, Number(port));
      const { container } = podOf(rendered);
      // Never the node's port, which the old agent of a rolling update holds.
      assert.deepEqual(container.readinessProbe, { exec: { command: ["netclaim", "probe", "ready", "--config", "/etc/netclaim/agent.yaml"] } }, `http.port=${port}`);
      assert.deepEqual(container.livenessProbe, { exec: { command: ["netclaim", "probe", "live", "--config", "/etc/netclaim/agent.yaml"] } }, `http.port=${port}`);
    }
  });

  it("puts everything in namespace.name and names its ServiceAccount there", async () => {
    const rendered = await helmTemplate("--set", "namespace.name=knd");
    assert.ok(find(rendered, "Namespace", "knd"));
    for (const object of rendered.filter((o) => !clusterScoped.has(o.kind))) assert.equal(object.metadata.namespace, "knd", key(object));
    assert.deepEqual(find(rendered, "ClusterRoleBinding", "netclaim-agent")["subjects"], [{ kind: "ServiceAccount", name: "netclaim-agent", namespace: "knd" }]);
    const policySchema = z.object({ spec: z.object({ matchConditions: z.array(z.object({ name: z.string(), expression: z.string() })) }) });
    for (const name of ["netclaim-resourceslices-own-node", "netclaim-claim-status-own-node"]) {
      const policy = policySchema.parse(find(rendered, "ValidatingAdmissionPolicy", name));
      assert.deepEqual(policy.spec.matchConditions, [
        { name: "is-netclaim-agent", expression: 'request.userInfo.username == "system:serviceaccount:knd:netclaim-agent"' },
      ]);
    }
    assert.equal((await helmTemplate("--set", "namespace.create=false")).some((o) => o.kind === "Namespace"), false);
  });

  for (const [label, flags] of [
    ["", []],
    ["openshift=true", ["--set", "openshift=true"]],
    ["requiredPlugin.enabled=true", ["--set", "requiredPlugin.enabled=true"]],
    ["the test node's runtime paths and env", [...testNodeRuntime, "--set-json", 'env=[{"name":"KUBERNETES_SERVICE_HOST","value":"10.0.0.1"}]']],
  ] as const) {
    it(`passes helm lint --strict ${label}`.trimEnd(), async () => {
      await run(helm, ["lint", "--strict", chart, ...flags]);
    });
  }
});
