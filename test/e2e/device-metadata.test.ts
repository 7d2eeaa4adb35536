/**
 * Device metadata in containers (KEP-5304, docs/device-metadata.md) on the
 * real node: a container's first command reads its netclaim metadata file,
 * for a claim made from a template (under resourceclaimtemplates/<pod claim
 * name>) and for a claim the pod names (under resourceclaims/<claim>), and
 * finds the interface netclaim attached in its pod: name, addresses, MAC.
 * A restarted agent keeps them as they are; unprepare removes the files and
 * their CDI specs.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { claimFields, claimTemplateFor, createNicPair, deviceClassFor, DRIVER, E2eAgent, waitForPublished } from "./agent.ts";
import {
  apply, busyboxPod, Cleanup, deleteObjects, deletePods, eventually, execInPod, kubectl, node, pathExists, podInterface, runCommand, uniqueName, waitForPodsReady,
} from "./harness.ts";

const NIC_PREFIX = "ncmd";
const CONTAINER_DIR = "/var/run/kubernetes.io/dra-device-attributes";
const FILE = `${DRIVER}-metadata.json`;

const metadataSchema = z.object({
  kind: z.literal("DeviceMetadata"),
  apiVersion: z.string(),
  metadata: z.object({ name: z.string(), namespace: z.string(), uid: z.string(), generation: z.number() }),
  podClaimName: z.string().optional(),
  requests: z.array(z.object({
    name: z.string(),
    devices: z.array(z.object({
      driver: z.string(),
      pool: z.string(),
      name: z.string(),
      attributes: z.record(z.string(), z.record(z.string(), z.unknown())),
      networkData: z.object({ interfaceName: z.string(), ips: z.array(z.string()), hardwareAddress: z.string() }),
    })),
  })),
});

/** The objects of the file as `cat` printed it: pretty-printed, each ending with a line "}". */
function metadataObjects(text: string): z.infer<typeof metadataSchema>[] {
  const objects: string[] = [];
  let current: string[] = [];
  for (const line of text.split("\n")) {
    if (current.length === 0 && line !== "{") continue;
    current.push(line);
    if (line === "}") {
      objects.push(current.join("\n"));
      current = [];
    }
  }
  return objects.map((o) => metadataSchema.parse(JSON.parse(o)));
}

describe("device metadata in containers (KEP-5304)", { timeout: 300_000 }, () => {
  const cleanup = new Cleanup();
  const template = uniqueName("e2e-md");
  const claim = uniqueName("e2e-md-claim");
  const deviceClass = uniqueName("e2e-md-class");
  const fromTemplate = uniqueName("e2e-md-a");
  const direct = uniqueName("e2e-md-b");
  const nics = [`${NIC_PREFIX}a`, `${NIC_PREFIX}b`];
  const paths = {
    [fromTemplate]: `${CONTAINER_DIR}/resourceclaimtemplates/nic/nic/${FILE}`,
    [direct]: `${CONTAINER_DIR}/resourceclaims/${claim}/nic/${FILE}`,
  };
  let agent: E2eAgent;
  let nodeName = "";
  const claimUids: string[] = [];

  before(async () => {
    nodeName = (await node()).nodeName;
    const wire = await createNicPair(nics[0] ?? "", nics[1] ?? "");
    cleanup.defer(() => wire.remove());
    agent = await E2eAgent.start({ nicGlob: `${NIC_PREFIX}*` });
    cleanup.defer(() => agent.remove());
    await apply(
      deviceClassFor(deviceClass, NIC_PREFIX),
      claimTemplateFor(template, deviceClass, { interface: { name: "dra0", addresses: ["198.51.100.41/24", "fd00:5304::11/64"] } }),
      {
        apiVersion: "resource.k8s.io/v1",
        kind: "ResourceClaim",
        metadata: { name: claim, namespace: "default" },
        spec: {
          devices: {
            requests: [{ name: "nic", exactly: { deviceClassName: deviceClass } }],
            config: [{ opaque: { driver: DRIVER, parameters: { apiVersion: "netclaim.dev/v1alpha1", kind: "NetworkConfig", interface: { name: "dra0", hardwareAddress: "02:00:00:0a:0b:0c", addresses: ["198.51.100.42/24"] } } } }],
          },
        },
      },
    );
    cleanup.defer(() => deleteObjects("deviceclasses.resource.k8s.io", [deviceClass], ""));
    cleanup.defer(() => deleteObjects("resourceclaimtemplates.resource.k8s.io", [template]));
    cleanup.defer(() => deleteObjects("resourceclaims.resource.k8s.io", [claim]));
    cleanup.defer(() => deletePods([fromTemplate, direct]));
    await waitForPublished(NIC_PREFIX, nics.length);
    // The container's first command prints the file: what the workload sees when it starts.
    const firstLook = (path: string): string[] => ["/bin/sh", "-c", `cat ${path}; trap 'exit 0' TERM; sleep 86400 & wait`];
    const templateFields = claimFields(template);
    await apply(
      busyboxPod({ name: fromTemplate, spec: templateFields.spec, container: { ...templateFields.container, command: firstLook(paths[fromTemplate] ?? "") } }),
      busyboxPod({
        name: direct,
        spec: { resourceClaims: [{ name: "net", resourceClaimName: claim }] },
        container: { resources: { claims: [{ name: "net" }] }, command: firstLook(paths[direct] ?? "") },
      }),
    );
    await waitForPodsReady([fromTemplate, direct]);
  });
  after(() => cleanup.run());

  for (const [which, podClaimName] of [["made from a template", "nic"], ["the pod names", undefined]] as const) {
    it(`gives the first container the interface netclaim attached, for a claim ${which}`, async () => {
      const pod = podClaimName === undefined ? direct : fromTemplate;
      // The pod's status maps only claims made from a template to their names.
      const claimName = podClaimName === undefined ? claim : (await kubectl(["get", "pod", pod, "-o", "jsonpath={.status.resourceClaimStatuses[0].resourceClaimName}"])).trim();
      const claimUid = (await kubectl(["get", "resourceclaim", claimName, "-o", "jsonpath={.metadata.uid}"])).trim();
      claimUids.push(claimUid);
      const seen = await kubectl(["logs", pod]);
      const objects = metadataObjects(seen);
      assert.deepEqual(objects.map((o) => o.apiVersion), ["metadata.resource.k8s.io/v1beta1", "metadata.resource.k8s.io/v1alpha1"], seen);
      assert.deepEqual(objects[1], { ...objects[0], apiVersion: "metadata.resource.k8s.io/v1alpha1" }, "both versions say the same");
      const [metadata] = objects;
      assert.ok(metadata);
      // Generation 2: prepare wrote 1, the attach wrote the interface before the container started.
      assert.deepEqual(metadata.metadata, { name: claimName, namespace: "default", uid: claimUid, generation: 2 });
      assert.equal(metadata.podClaimName, podClaimName);
      const [request] = metadata.requests;
      assert.ok(request);
      assert.equal(request.name, "nic");
      const [device] = request.devices;
      assert.ok(device, seen);
      assert.equal(device.driver, DRIVER);
      assert.equal(device.pool, nodeName);
      const hostNic = device.attributes[`${DRIVER}/ifName`]?.string;
      assert.ok(typeof hostNic === "string" && nics.includes(hostNic), `attributes name the host NIC: ${JSON.stringify(device.attributes)}`);

      const dra0 = await podInterface(pod);
      assert.ok(dra0, `no dra0 in ${pod}`);
      assert.equal(device.networkData.interfaceName, "dra0");
      assert.deepEqual([...device.networkData.ips].sort(), [...dra0.addresses].sort());
      assert.equal(device.networkData.hardwareAddress, dra0.mac);
      if (podClaimName === undefined) assert.equal(dra0.mac, "02:00:00:0a:0b:0c");
      else assert.deepEqual([...device.networkData.ips].sort(), ["198.51.100.41/24", "fd00:5304::11/64"]);

      const write = await execInPod(pod, ["/bin/sh", "-c", `echo x >> ${paths[pod] ?? ""}`]);
      assert.notEqual(write.code, 0, "the file is mounted read-only");
    });
  }

  it("keeps the files, in place, and answers the same CDI devices once when the agent restarts", async () => {
    assert.equal(claimUids.length, 2);
    const hostFiles = claimUids.map((uid) => `${agent.runtimeDir}/device-metadata/${uid}/nic/${FILE}`);
    const look = async (): Promise<string[]> => Promise.all(hostFiles.map(async (f) => (await runCommand("sh", ["-c", `stat -c %i ${f} && cat ${f}`])).stdout));
    const before = await look();
    await agent.stop("SIGKILL");
    await agent.start();
    assert.deepEqual(await look(), before, "same inodes, same content");
    for (const uid of claimUids) {
      const record = z.object({ devices: z.array(z.object({ cdiDeviceIDs: z.array(z.string()) })) }).parse(JSON.parse((await runCommand("cat", [`${agent.stateDir}/dra-claims/${uid}.json`])).stdout));
      assert.deepEqual(record.devices.flatMap((d) => d.cdiDeviceIDs).filter((id) => id.startsWith(`${DRIVER}/metadata=`)), [`${DRIVER}/metadata=${uid}_nic`]);
    }
    // What a container started now sees.
    const seen = await execInPod(direct, ["cat", paths[direct] ?? ""]);
    assert.equal(metadataObjects(seen.stdout)[0]?.metadata.generation, 2, seen.stderr);
  });

  it("removes the files and their CDI specs when the claims are unprepared", async () => {
    await deletePods([fromTemplate, direct]);
    await deleteObjects("resourceclaims.resource.k8s.io", [claim]);
    for (const uid of claimUids) {
      await eventually(`the metadata of claim ${uid} removed`, async () => {
        const specs = await runCommand("sh", ["-c", `ls /var/run/cdi | grep -c -- '-metadata_${uid}_' || true`]);
        return !(await pathExists(`${agent.runtimeDir}/device-metadata/${uid}`)) && specs.stdout.trim() === "0";
      }, 60_000);
    }
  });
});
