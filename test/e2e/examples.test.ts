/**
 * Every manifest in examples/ applied on the real node, as a user applies it
 * (`kubectl apply -n <namespace> -f examples/<file>`), each into a namespace of
 * its own: its pods get the interfaces the example's header promises, with the
 * names, addresses and MTUs it configures, and when its objects are deleted the
 * devices are back on the host as they were. A file in examples/ without a
 * check here fails the suite, so no example can rot.
 *
 * First each file as written goes through the API server's validation and
 * admission (a server-side dry run). Then adapt() changes only what must
 * differ on this node, in the parsed objects:
 * - pods (and a Deployment's pod template) get NODE_PLACEMENT (the test node's
 *   nodeSelector and taint toleration) and the node's local busybox image,
 *   never pulled: the examples name a public image;
 * - every request's DeviceClass becomes one that selects this test's stand-in
 *   NICs (veths, deviceClassFor): the shipped classes select any device
 *   (netclaim-netdev) or PCI, SR-IOV and RDMA devices, which this node lacks;
 * - a matchAttribute constraint on resource.kubernetes.io/pcieRoot becomes one
 *   on netclaim.dev/encapsulation, which the veths share: they have no PCIe
 *   root, and a device without the attribute never satisfies the constraint.
 *   The pcieRoot alignment itself is the scheduler's, tested in
 *   test/api/scheduling.test.ts; here the two-request claim with its
 *   constraint gives the pod both interfaces;
 * - NetworkAttachmentDefinitions: a macvlan's master becomes a host veth of the
 *   test's, host-device becomes the node's host-device-by-name (docs/multus.md:
 *   host-device takes Multus's deviceID for a PCI address, and a veth has
 *   none), and the CNI network's name gets the namespace's suffix, so
 *   host-local's lease directory is this run's alone.
 * Names stay as written: the namespace makes them unique.
 *
 * shared-parent.yaml runs with its own DeviceClass (netclaim-shared), which
 * selects the shared parents the agent here publishes: one host veth of its
 * own (SHARED_PARENT), marked by the share rule the example's header shows. On
 * a release without consumable capacity (before 1.36) the parent holds one
 * claim at a time, so one replica runs and the others stay Pending.
 *
 * RDMA: this node's kernel has no RDMA devices (no rdma_rxe, no
 * /sys/class/infiniband) and netclaim finds RDMA only on PCI functions, so no
 * device here has `rdma: true`. rdma-nic.yaml is checked twice: as written, its
 * claim finds no device (the shipped netclaim-rdma class selects none of the
 * stand-ins) and the pod is unschedulable; with the class pointed at a stand-in,
 * the pod runs with data0 as configured. The character devices themselves
 * (the CDI spec's /dev/infiniband nodes) are covered against sysfs fixtures in
 * test/node/multus.test.ts and src/cdi, not here.
 */
import assert from "node:assert/strict";
import { readdir, readFile, rm } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { k8sVersions, minorOf } from "../fixtures/k8s-versions.ts";
import { createNicPair, deviceClassFor, E2eAgent, waitForPublished } from "./agent.ts";
import {
  BUSYBOX_IMAGE,
  Cleanup,
  HOST_LOCAL_DIR,
  NODE_PLACEMENT,
  addressOnly,
  apply,
  createHostVeth,
  deleteObjects,
  eventually,
  getPod,
  hostDevices,
  kubectl,
  netnsInterfaces,
  networkStatus,
  node,
  podCanPing,
  podSandbox,
  runCommand,
  uniqueName,
  waitForPodsReady,
  type NetnsInterface,
} from "./harness.ts";

const EXAMPLES = new URL("../../examples/", import.meta.url).pathname;
const NIC_PREFIX = "nce2x";
/** Two veth pairs: four stand-in NICs, as many as the examples use at once (two) and spare. */
const NICS = ["a", "b", "c", "d"].map((letter) => `${NIC_PREFIX}${letter}`);
/** The shared parent: outside NIC_PREFIX, so the stand-ins' DeviceClass never selects it. */
const SHARED_PARENT = "nce2ysp";
/** Examples run with their own DeviceClasses, which select what the agent publishes for them; their checks wait for their pods. */
const AS_WRITTEN = new Set(["shared-parent.yaml"]);
const consumableCapacity = minorOf(k8sVersions().current) >= 36;

type Json = Record<string, unknown>;

function object(value: unknown, what: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${what} is not an object`);
  return value as Json;
}

function list(value: unknown, what: string): Json[] {
  if (!Array.isArray(value)) throw new Error(`${what} is not a list`);
  return value.map((item, i) => object(item, `${what}[${String(i)}]`));
}

/** The objects of an examples/ file, as written. */
async function readExample(file: string): Promise<Json[]> {
  const text = await readFile(`${EXAMPLES}${file}`, "utf8");
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map(String).join("; ")}`);
    return doc.contents === null ? [] : [object(doc.toJS(), `${file}: a document`)];
  });
}

interface Target {
  /** The test's DeviceClass for the stand-in NICs; undefined keeps the example's classes. */
  readonly deviceClass: string | undefined;
  /** A host interface for macvlan masters. */
  readonly master: string;
  /** Appended to CNI network names. */
  readonly suffix: string;
}

/** An example's object changed only where this node differs (the file's comment says what). */
function adapt(original: Json, target: Target): Json {
  const copy = structuredClone(original);
  const kind = String(copy["kind"]);
  switch (kind) {
    case "Pod":
      placePod(object(copy["spec"], "Pod spec"));
      break;
    case "Deployment":
      placePod(object(object(object(copy["spec"], "Deployment spec")["template"], "template")["spec"], "pod template spec"));
      break;
    case "ResourceClaim":
      retarget(object(object(copy["spec"], "claim spec")["devices"], "devices"), target);
      break;
    case "ResourceClaimTemplate":
      retarget(object(object(object(copy["spec"], "template spec")["spec"], "claim spec")["devices"], "devices"), target);
      break;
    case "NetworkAttachmentDefinition": {
      const spec = object(copy["spec"], "NAD spec");
      const config = object(JSON.parse(String(spec["config"])), "NAD config");
      if ("plugins" in config) throw new Error("examples: adapt() handles single-plugin NAD configs only");
      config["name"] = `${String(config["name"])}-${target.suffix}`;
      if (config["type"] === "macvlan") config["master"] = target.master;
      if (config["type"] === "host-device") config["type"] = "host-device-by-name";
      spec["config"] = JSON.stringify(config);
      break;
    }
    default:
      throw new Error(`examples: adapt() does not know kind ${kind}; say in this file what a ${kind} needs on the test node`);
  }
  return copy;
}

function placePod(spec: Json): void {
  spec["nodeSelector"] = { ...object(spec["nodeSelector"] ?? {}, "nodeSelector"), ...NODE_PLACEMENT.nodeSelector };
  spec["tolerations"] = [...list(spec["tolerations"] ?? [], "tolerations"), ...NODE_PLACEMENT.tolerations];
  for (const container of list(spec["containers"], "containers")) {
    container["image"] = BUSYBOX_IMAGE;
    container["imagePullPolicy"] = "Never";
  }
}

function retarget(devices: Json, target: Target): void {
  if (target.deviceClass === undefined) return;
  for (const request of list(devices["requests"], "requests")) {
    object(request["exactly"], "request.exactly")["deviceClassName"] = target.deviceClass;
  }
  for (const constraint of list(devices["constraints"] ?? [], "constraints")) {
    if (constraint["matchAttribute"] === "resource.kubernetes.io/pcieRoot") constraint["matchAttribute"] = "netclaim.dev/encapsulation";
  }
}

/** An example applied into a namespace of its own. */
interface ExampleRun {
  readonly namespace: string;
  /** Its pods (Ready, unless runExample was told not to wait). */
  readonly pods: readonly string[];
  /** Deletes its objects as a user would, waits, and removes the namespace and its host-local leases. */
  remove(): Promise<void>;
}

/** The stand-ins' DeviceClass and the macvlan master, once before() has made them. */
let target: Omit<Target, "suffix">;

function namespaceFor(file: string): string {
  return uniqueName(`e2e-ex-${file.replace(/\.yaml$/, "").slice(0, 30)}`);
}

/** Removes what runExample made: the objects, then the namespace, then host-local's directories. */
async function removeObjects(namespace: string, objects: readonly Json[]): Promise<void> {
  await kubectl(["delete", "-n", namespace, "--ignore-not-found", "--wait", "--timeout", "120s", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
  await deleteObjects("namespace", [namespace], "");
  for (const nad of objects.filter((o) => o["kind"] === "NetworkAttachmentDefinition")) {
    const name = String(object(JSON.parse(String(object(nad["spec"], "NAD spec")["config"])), "NAD config")["name"]);
    await rm(`${HOST_LOCAL_DIR}/${name}`, { recursive: true, force: true });
  }
}

/** The pods an example's objects make: its Pods, and each Deployment's replicas once they exist. */
async function examplePods(namespace: string, objects: readonly Json[]): Promise<string[]> {
  const pods: string[] = [];
  for (const o of objects) {
    const name = String(object(o["metadata"], "metadata")["name"]);
    if (o["kind"] === "Pod") pods.push(name);
    if (o["kind"] !== "Deployment") continue;
    const spec = object(o["spec"], "Deployment spec");
    const labels = object(object(spec["selector"], "selector")["matchLabels"], "matchLabels");
    const selector = Object.entries(labels).map(([key, value]) => `${key}=${String(value)}`).join(",");
    let names: string[] = [];
    await eventually(`${String(spec["replicas"])} pods of deployment ${namespace}/${name}`, async () => {
      const out = await kubectl(["get", "pods", "-n", namespace, "-l", selector, "-o", "jsonpath={.items[*].metadata.name}"]);
      names = out.split(/\s+/).filter(Boolean);
      return names.length === Number(spec["replicas"]);
    }, 60_000);
    pods.push(...names);
  }
  return pods;
}

/** Dry-runs the file as written, then applies it adapted to `deviceClass` (undefined: the example's own) and waits for its pods. */
async function runExample(file: string, deviceClass: string | undefined, podsReady = true): Promise<ExampleRun> {
  const namespace = namespaceFor(file);
  await kubectl(["create", "namespace", namespace]);
  const objects = (await readExample(file)).map((o) => adapt(o, { ...target, deviceClass, suffix: namespace.slice(-6) }));
  const remove = () => removeObjects(namespace, objects);
  try {
    // As written: what a user's `kubectl apply` sends must pass validation and admission.
    await kubectl(["apply", "--dry-run=server", "-n", namespace, "-f", `${EXAMPLES}${file}`]);
    await kubectl(["apply", "-n", namespace, "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
    const pods = await examplePods(namespace, objects);
    if (podsReady) await waitForPodsReady(pods, namespace);
    return { namespace, pods, remove };
  } catch (error) {
    await remove().catch(() => undefined);
    throw error;
  }
}

async function podLinks(pod: string, namespace: string): Promise<Map<string, NetnsInterface>> {
  const links = await netnsInterfaces((await podSandbox(pod, namespace)).netnsPath);
  return new Map(links.map((link) => [link.name, link]));
}

/** The pod's interface `name`, up, with `mtu`; fails naming what the pod has instead. */
async function podLink(pod: string, namespace: string, name: string, mtu?: number): Promise<NetnsInterface> {
  const links = await podLinks(pod, namespace);
  const link = links.get(name);
  assert.ok(link, `no ${name} in pod ${namespace}/${pod}: it has ${[...links.keys()].join(", ")}`);
  assert.equal(link.up, true, `${name} in pod ${namespace}/${pod} is down`);
  if (mtu !== undefined) assert.equal(link.mtu, mtu, `${name}'s MTU in pod ${namespace}/${pod}`);
  return link;
}

/** The one pod of `pods` that runs, once one is Ready and the others are unschedulable; fails if more run. */
async function onlyOneRuns(pods: readonly string[], namespace: string): Promise<string[]> {
  let ready: string[] = [];
  await eventually("one replica Ready and the others unschedulable", async () => {
    const conditions = await Promise.all(pods.map(async (pod) => (await getPod(pod, namespace)).status.conditions ?? []));
    ready = pods.filter((_, i) => conditions[i]?.some((c) => c.type === "Ready" && c.status === "True"));
    const unschedulable = conditions.filter((c) => c.some((x) => x.type === "PodScheduled" && x.status === "False" && x.reason === "Unschedulable"));
    assert.ok(ready.length <= 1, `a parent without consumable capacity holds one claim at a time, but ${ready.join(", ")} run`);
    return ready.length === 1 && unschedulable.length === pods.length - 1;
  }, 120_000);
  return ready;
}

/** Whether the IPv4 `address` is between `first` and `last` (same /24). */
function inRange(address: string, first: string, last: string): boolean {
  const host = (ip: string) => Number(ip.split(".")[3]);
  const net = (ip: string) => ip.split(".").slice(0, 3).join(".");
  return net(address) === net(first) && host(address) >= host(first) && host(address) <= host(last);
}

describe("examples/: each manifest on the real node, adapted only where the node differs", { timeout: 900_000 }, () => {
  const cleanup = new Cleanup();
  let standInMacs: Set<string | undefined>;
  let hostBefore: string;
  const backOnHost = () => eventually("the stand-in NICs and the shared parent on the host as they were", async () => JSON.stringify(await hostDevices([...NICS, SHARED_PARENT])) === hostBefore, 60_000);

  before(async () => {
    await node();
    for (let i = 0; i < NICS.length; i += 2) {
      const pair = await createNicPair(NICS[i] ?? "", NICS[i + 1] ?? "");
      cleanup.defer(() => pair.remove());
    }
    const master = await createHostVeth(uniqueName("e2em"));
    cleanup.defer(() => master.remove());
    const parent = await createHostVeth(SHARED_PARENT);
    cleanup.defer(() => parent.remove());
    // The rule shared-parent.yaml's header shows.
    const agent = await E2eAgent.start({ nicGlob: `${NIC_PREFIX}*`, sharedParents: { ifName: SHARED_PARENT, share: { interfaces: 8, bandwidth: "10G" } } });
    cleanup.defer(() => agent.remove());
    const deviceClass = uniqueName("e2e-examples");
    await apply(deviceClassFor(deviceClass, NIC_PREFIX));
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    target = { deviceClass, master: master.name };
    await waitForPublished(NIC_PREFIX, NICS.length);
    await waitForPublished(SHARED_PARENT, 1);
    hostBefore = JSON.stringify(await hostDevices([...NICS, SHARED_PARENT]));
    standInMacs = new Set((await hostDevices(NICS)).map((d) => d.mac));
  });
  after(() => cleanup.run());

  it("has a check below for every file in examples/", async () => {
    const files = (await readdir(EXAMPLES)).filter((f) => f.endsWith(".yaml")).sort();
    assert.deepEqual(files, Object.keys(CHECKS).sort());
  });

  /** What each example promises, checked in its running pods. */
  const CHECKS: Record<string, (run: ExampleRun) => Promise<void>> = {
    "static-nic.yaml": async ({ namespace, pods: [pod = ""] }) => {
      const data0 = await podLink(pod, namespace, "data0", 9000);
      assert.ok(standInMacs.has(data0.mac), "data0 is a stand-in NIC");
      assert.deepEqual([...data0.addresses].sort(), ["198.51.100.10/24", "fd00:10::10/64"]);
      const { netnsPath } = await podSandbox(pod, namespace);
      const routes = await runCommand("nsenter", [`--net=${netnsPath}`, "ip", "-4", "route", "show", "dev", "data0"]);
      assert.match(routes.stdout, /^198\.18\.0\.0\/15 via 198\.51\.100\.1 /m, `routes over data0:\n${routes.stdout}`);
    },
    "ipam-pool.yaml": async ({ namespace, pods }) => {
      assert.equal(pods.length, 2, "two replicas");
      const addresses: string[] = [];
      for (const pod of pods) {
        const data0 = await podLink(pod, namespace, "data0", 9000);
        assert.equal(data0.addresses.length, 1, `${pod}'s data0 has one address: ${data0.addresses.join(", ")}`);
        const [address = ""] = data0.addresses;
        assert.ok(address.endsWith("/24") && inRange(addressOnly(address), "198.51.100.100", "198.51.100.119"), `${pod}'s data0 address ${address} is from the pool`);
        addresses.push(address);
      }
      assert.notEqual(addresses[0], addresses[1], "each replica has its own address");
    },
    "pcie-aligned-nics.yaml": async ({ namespace, pods: [pod = ""] }) => {
      const data0 = await podLink(pod, namespace, "data0", 9000);
      const data1 = await podLink(pod, namespace, "data1", 9000);
      assert.ok(standInMacs.has(data0.mac) && standInMacs.has(data1.mac), "both are stand-in NICs");
      assert.notEqual(data0.mac, data1.mac, "two devices");
    },
    "multus-side-by-side.yaml": async ({ namespace, pods: [pod = ""] }) => {
      const data0 = await podLink(pod, namespace, "data0", 9000);
      assert.ok(standInMacs.has(data0.mac), "data0 is a stand-in NIC");
      const net1 = await podLink(pod, namespace, "net1");
      assert.equal(net1.kind, "macvlan");
      const [address = ""] = net1.addresses;
      assert.ok(inRange(addressOnly(address), "198.51.100.130", "198.51.100.139"), `net1's address ${address} is from storage-net`);
      const status = (await networkStatus(pod, namespace)).find((s) => s.interface === "net1");
      assert.equal(status?.name, `${namespace}/storage-net`);
      assert.deepEqual(status.ips, [addressOnly(address)]);
    },
    "multus-delegation.yaml": async ({ namespace, pods: [pod = ""] }) => {
      const net1 = await podLink(pod, namespace, "net1");
      assert.ok(standInMacs.has(net1.mac), "net1 is the claimed stand-in NIC, moved by host-device");
      const [address = ""] = net1.addresses;
      assert.ok(inRange(addressOnly(address), "198.51.100.140", "198.51.100.149"), `net1's address ${address} is from vf-net`);
      const claim = (await kubectl(["get", "pod", "-n", namespace, pod, "-o", "jsonpath={.status.resourceClaimStatuses[0].resourceClaimName}"])).trim();
      const reported = () => kubectl(["get", "resourceclaim", "-n", namespace, claim, "-o", "jsonpath={.status.devices[0].conditions[?(@.type==\"Ready\")].reason} {.status.devices[0].networkData.interfaceName}"]);
      await eventually("the claim's status to report net1 as DelegatedToMultus", async () => (await reported()).trim() === "DelegatedToMultus net1");
    },
    "shared-parent.yaml": async ({ namespace, pods }) => {
      assert.equal(pods.length, 3, "three replicas");
      const running = consumableCapacity ? pods : await onlyOneRuns(pods, namespace);
      if (consumableCapacity) await waitForPodsReady(pods, namespace);
      const addresses: string[] = [];
      for (const pod of running) {
        const data0 = await podLink(pod, namespace, "data0", 1500);
        assert.equal(data0.kind, "macvlan", `${pod}'s data0 is a child of the parent`);
        assert.ok(!standInMacs.has(data0.mac), `${pod}'s data0 has a MAC of its own`);
        assert.equal(data0.addresses.length, 1, `${pod}'s data0 has one address: ${data0.addresses.join(", ")}`);
        const [address = ""] = data0.addresses;
        assert.ok(inRange(addressOnly(address), "198.51.100.150", "198.51.100.169"), `${pod}'s data0 address ${address} is from shared-pool`);
        addresses.push(addressOnly(address));
      }
      assert.equal(new Set(addresses).size, addresses.length, "each replica has its own address");
      const [first = "", second] = running;
      if (second !== undefined) assert.ok(await podCanPing(first, addresses[1] ?? "", { namespace }), "the replicas reach one another through the parent (bridge mode)");
    },
    "rdma-nic.yaml": async ({ namespace, pods: [pod = ""] }) => {
      const data0 = await podLink(pod, namespace, "data0", 9000);
      assert.ok(standInMacs.has(data0.mac), "data0 is a stand-in NIC");
      assert.deepEqual(data0.addresses, ["198.51.100.20/24"]);
    },
  };

  for (const [file, check] of Object.entries(CHECKS)) {
    it(`${file}: its pods get the interfaces it promises, and the devices return to the host`, async () => {
      const run = AS_WRITTEN.has(file) ? await runExample(file, undefined, false) : await runExample(file, target.deviceClass);
      try {
        await check(run);
      } finally {
        await run.remove();
      }
      await backOnHost();
    });
  }

  it("rdma-nic.yaml as written: the netclaim-rdma class selects no device of this node (none is RDMA), so its pod is unschedulable", async () => {
    const run = await runExample("rdma-nic.yaml", undefined, false);
    try {
      const [pod = ""] = run.pods;
      await eventually("the scheduler to find no device for the RDMA claim", async () => {
        const scheduled = (await getPod(pod, run.namespace)).status.conditions?.find((c) => c.type === "PodScheduled");
        return scheduled?.status === "False" && scheduled.reason === "Unschedulable" && /cannot allocate all claims/.test(scheduled.message ?? "");
      }, 60_000);
      assert.equal((await kubectl(["get", "resourceclaim", "-n", run.namespace, "rdma-nic", "-o", "jsonpath={.status.allocation}"])).trim(), "", "not allocated");
    } finally {
      await run.remove();
    }
  });
});

