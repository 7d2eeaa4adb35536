/**
 * Adapters between the DRA layer's interfaces (ClaimSource, ClaimPreparer)
 * and the network semantics in claims/, plus the inventory and CDI views the
 * preparer needs. Only the composition root knows both sides.
 */
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { NetworkPreparer, CdiPublisher, DeviceLookup, NadSource, PodSource } from "../claims/preparer.ts";
import type { ClaimPlan } from "../claims/plan.ts";
import { ClaimPrepareError } from "../claims/errors.ts";
import { errorMessage } from "../common/errors.ts";
import type { ClaimContent, ClaimPreparer, ClaimRef, ClaimSource, DriverClaim, JsonValue, PreparedClaim } from "../dra/index.ts";
import { baseRequestName } from "../dra/index.ts";
import { attachGateDir, attachGatePath } from "../engine/index.ts";
import { cdiDeviceId, POD_CLAIM_NAME_ANNOTATION, publishClaimMetadata, rdmaCharDevices, removeClaimMetadata, writeCdiSpec, type RdmaRoots } from "../cdi/index.ts";
import type { InventorySnapshot } from "../inventory/index.ts";
import { getNetworkAttachmentDefinition, getPodWithClaims, getResourceClaim, unlessNotFound, type KubeClient } from "../kube/index.ts";
import { toApiDevice } from "../slices/index.ts";
import { attachmentKey } from "./pod-network.ts";
import type { ClaimConsumers } from "./shared-claims.ts";
import type { ClaimStatusReporter } from "./status-reporter.ts";

/** Claims straight from the API server: the kubelet has just read the same object. */
export function apiClaimSource(client: KubeClient): ClaimSource {
  return {
    async get(ref: ClaimRef, options: { signal: AbortSignal }): Promise<ClaimContent> {
      const claim = await getResourceClaim(client, ref.namespace, ref.name, options.signal);
      const devices = claim.status?.allocation?.devices;
      const podClaimName = claim.metadata.annotations?.[POD_CLAIM_NAME_ANNOTATION];
      return {
        ref: { namespace: claim.metadata.namespace, name: claim.metadata.name, uid: claim.metadata.uid },
        ...(podClaimName !== undefined && { podClaimName }),
        allocation:
          claim.status?.allocation == null
            ? undefined
            : {
                results: (devices?.results ?? []).map((r) => ({
                  request: r.request,
                  driver: r.driver,
                  pool: r.pool,
                  device: r.device,
                  shareID: r.shareID,
                  adminAccess: r.adminAccess ?? undefined,
                })),
                config: (devices?.config ?? []).flatMap((c) =>
                  c.opaque == null
                    ? []
                    : [{ source: c.source, requests: c.requests ?? [], driver: c.opaque.driver, parameters: (c.opaque.parameters ?? null) as JsonValue }],
                ),
              },
        reservedFor: (claim.status?.reservedFor ?? []).map((c) => ({ resource: c.resource, apiGroup: c.apiGroup ?? undefined, name: c.name, uid: c.uid })),
      };
    },
  };
}

/** Who consumes what, from the API server; undefined once the claim or pod (with that UID) is gone. */
export function apiClaimConsumers(client: KubeClient): ClaimConsumers {
  return {
    async ofClaim(ref, signal) {
      const claim = await unlessNotFound(getResourceClaim(client, ref.namespace, ref.name, signal));
      if (claim?.metadata.uid !== ref.uid) return undefined;
      return (claim.status?.reservedFor ?? []).filter((c) => c.resource === "pods" && (c.apiGroup ?? "") === "").map((c) => c.uid);
    },
    async ofPod(pod, signal) {
      const found = await unlessNotFound(getPodWithClaims(client, pod.namespace, pod.name, signal));
      return found?.uid === pod.uid ? new Set(found.claims) : undefined;
    },
  };
}

/**
 * The DRA layer's ClaimPreparer on top of the network preparer; the claim
 * status says "prepared" (or "left to Multus") as soon as prepare succeeded,
 * and our entries go away at unprepare. `onPrepared` hears of every plan
 * prepared.
 */
export function draPreparer(preparer: NetworkPreparer, status: ClaimStatusReporter, onPrepared: (plan: ClaimPlan) => void): ClaimPreparer {
  return {
    async prepare(claim: DriverClaim, options: { signal: AbortSignal; recordIntent: () => Promise<void> }): Promise<PreparedClaim> {
      let plan: ClaimPlan;
      try {
        plan = await preparer.prepare(
          { ref: claim.ref, podClaimName: claim.podClaimName, results: claim.results, config: claim.config, reservedFor: claim.reservedFor },
          options.signal,
          options.recordIntent,
        );
      } catch (err) {
        reportPrepareFailure(status, claim, err);
        throw err;
      }
      onPrepared(plan);
      for (const device of plan.devices) {
        status.setDevice(
          plan.claim,
          device,
          device.mode === "multus" ? { kind: "delegated", resourceName: device.resourceName ?? "" } : { kind: "prepared" },
        );
      }
      return {
        devices: plan.devices.map((d) => ({
          requestNames: [baseRequestName(d.request)],
          poolName: d.pool,
          deviceName: d.device,
          cdiDeviceIDs: d.cdiDeviceIds,
          ...(d.shareID !== undefined && { shareID: d.shareID }),
        })),
        plan: plan as unknown as JsonValue,
      };
    },
    async unprepare(ref: ClaimRef, prepared: PreparedClaim | undefined, options: { signal: AbortSignal }): Promise<void> {
      await preparer.unprepare(ref.uid, prepared?.plan, options.signal);
      status.clearClaim(ref);
    },
    async restore(ref: ClaimRef, prepared: PreparedClaim): Promise<void> {
      await preparer.restore(prepared.plan, `claim ${ref.namespace}/${ref.name}`);
    },
  };
}

/** Published devices of the latest inventory snapshot, by DRA device name. */
export function inventoryLookup(snapshot: () => InventorySnapshot): DeviceLookup {
  return {
    find(deviceName, driverName) {
      const report = snapshot().reports.find((r) => r.publish && r.name === deviceName);
      if (report === undefined) return undefined;
      const { device } = report;
      return {
        ifName: device.ifName,
        ifIndex: device.ifIndex,
        mac: device.mac,
        pciAddress: device.pci?.address,
        rdma: device.rdma === undefined ? undefined : { device: device.rdma.device, charDevices: device.rdma.charDevices },
        resourceName: report.multusResourceName,
        attributes: toApiDevice(report, driverName).attributes,
        shared: report.share !== undefined,
      };
    },
  };
}

export function apiNadSource(client: KubeClient): NadSource {
  return {
    async config(namespace, name, signal) {
      return (await getNetworkAttachmentDefinition(client, namespace, name, signal)).spec.config;
    },
  };
}

/** A pod's annotations and the claims it consumes, read through pods/status as the network-status writer reads it. */
export function apiPodSource(client: KubeClient): PodSource {
  return {
    async get(namespace, name, signal) {
      const pod = await getPodWithClaims(client, namespace, name, signal);
      return { uid: pod.uid, annotations: pod.annotations ?? {}, claims: pod.claims };
    },
  };
}

/**
 * CDI specs under `specDir`, one per device of a claim, named
 * `<claimUid>-<device>`; the attach gates they mount live under the engine's
 * gate directory in `runtimeDir`. The device metadata files live in
 * `runtimeDir` too, which the runtime sees at the same path as the agent.
 */
export function cdiPublisher(specDir: string, runtimeDir: string, roots: RdmaRoots): CdiPublisher {
  const gateDir = attachGateDir(runtimeDir);
  const metadata = { dir: deviceMetadataDir(runtimeDir), specDir };
  return {
    async write(claimUid, devices) {
      const ids = new Map<string, string>();
      for (const device of devices) {
        const name = `${claimUid}-${device.name}`;
        writeCdiSpec(specDir, name, {
          charDevices: device.rdmaDevice === undefined ? [] : await rdmaCharDevices(device.rdmaDevice, roots),
          ...(device.gated && { gate: { hostPath: attachGatePath(gateDir, attachmentKey(claimUid, device.name)), device: device.name } }),
        });
        ids.set(device.name, cdiDeviceId(name));
      }
      return ids;
    },
    writeMetadata(claim, driverName, devices, options) {
      return publishClaimMetadata(metadata, driverName, claim, devices, options);
    },
    async remove(claimUid) {
      await removeClaimMetadata(metadata, claimUid);
      let names: string[];
      try {
        names = await readdir(specDir);
      } catch {
        return;
      }
      await Promise.all(names.filter((n) => n.includes(`_${claimUid}-`)).map((n) => rm(`${specDir}/${n}`, { force: true })));
    },
  };
}

/** The device metadata files' directory under the agent's runtimeDir. */
export function deviceMetadataDir(runtimeDir: string): string {
  return join(runtimeDir, "device-metadata");
}

/**
 * The kubelet shows a failed prepare only on the pod, as a generic
 * FailedPrepareDynamicResources event; we add ours on the claim and the pod,
 * with the reason and the field, so `kubectl describe` on either says what to fix.
 */
function reportPrepareFailure(status: ClaimStatusReporter, claim: DriverClaim, err: unknown): void {
  const reason = err instanceof ClaimPrepareError && err.code === "CLAIM_INVALID_CONFIG" ? "NetworkConfigInvalid" : "NetworkPrepareFailed";
  const message = errorMessage(err);
  status.event({ apiVersion: "resource.k8s.io/v1", kind: "ResourceClaim", ...claim.ref }, "Warning", reason, message);
  for (const consumer of claim.reservedFor) {
    if (consumer.resource !== "pods") continue;
    status.event({ apiVersion: "v1", kind: "Pod", namespace: claim.ref.namespace, name: consumer.name, uid: consumer.uid }, "Warning", reason, message);
  }
}
