/**
 * The NRI side of claims: when the runtime starts a pod sandbox, the pod's
 * prepared claim plans become engine attachments; when it stops or removes
 * it, they are restored to the host; after a (re)connection, Synchronize
 * attaches what a running pod is missing and restores what belongs to pods
 * that are gone.
 *
 * RunPodSandbox is on the runtime's 2 s clock and on the pod's start-up
 * path: it reads plans from disk, names the interfaces, and has the engine
 * check and journal the attach, so every error known up front fails the
 * sandbox. The kernel work (the moves, ~15 ms each, and the configuration)
 * then runs while the runtime and the kubelet go on to create the first
 * container, on the engine's thread at a raised priority so that their
 * work does not stretch it (docs/engine.md, "From RunPodSandbox to a
 * configured interface", says why not inside RunPodSandbox);
 * CreateContainer waits for it, so no container of the pod is created, let
 * alone run, before its interfaces are in place, and a failed attach fails
 * the container (the kubelet retries it, and so does the attach).
 * Everything slow (status writes, events) is handed to the status
 * reporter, and, with the network-status opt-in, the pod's annotation to
 * its writer once the attach is done.
 */
import type { Logger } from "pino";
import { recordNetworkData, type DeviceNetworkData } from "../cdi/index.ts";
import { assignInterfaceNames, type NamingInput } from "../claims/interface-names.ts";
import { MULTUS_RENAME_HINT, multusInterfaceOwners } from "../claims/multus-networks.ts";
import { parseClaimPlan, type ClaimPlan, type DevicePlan } from "../claims/plan.ts";
import { errorMessage } from "../common/errors.ts";
import type { ClaimState } from "../dra/index.ts";
import { EngineError, type Attacher, type AttachmentPlanInput, type AttachResult } from "../engine/index.ts";
import type { AttachedDevices } from "../inventory/index.ts";
import type { BatchRunner, Link } from "../netlink/index.ts";
import {
  NriHandlerError, REQUIRED_PLUGINS_ANNOTATION, requiredPlugins, StatusCode,
  type ContainerAdjustmentSpec, type ContainerInfo, type HandlerContext, type NriHandlers, type PodSandboxInfo, type SynchronizedState,
} from "../nri/index.ts";
import { AttachActivity } from "./attach-activity.ts";
import type { AttachedInterface } from "./network-status.ts";
import { findDelegatedInterface, type DelegatedInterface } from "./delegated-interfaces.ts";
import { SharedClaims, type ClaimConsumers } from "./shared-claims.ts";
import type { NetworkStatusWriter } from "./network-status-writer.ts";
import type { AttachmentOwner, AttachmentRecovery } from "./recovery.ts";
import { runningPods } from "./running-pods.ts";
import type { ClaimStatusReporter } from "./status-reporter.ts";

export interface PodNetworkOptions {
  claims: ClaimState;
  engine: Attacher;
  /** Runs netlink requests off the main thread (the engine's thread in the agent). */
  netlink: BatchRunner;
  status: Pick<ClaimStatusReporter, "setDevice" | "event">;
  /** Who a claim is reserved for now, to refuse pods that share a claim another pod holds (see shared-claims.ts). */
  consumers: ClaimConsumers;
  /** The kernel's RDMA namespace mode: in exclusive mode RDMA devices move with their netdev. */
  rdmaMode: "shared" | "exclusive";
  /** The name netclaim's NRI plugin registers with; pods with devices should require it (deploy/required-plugin). */
  nriPluginName: string;
  /** Points attachments whose recorded namespace is gone at their pod's live one, at every Synchronize. */
  recovery: Pick<AttachmentRecovery, "retarget">;
  /** Counts each RunPodSandbox as a pod start under way, for background work to wait on. */
  activity?: AttachActivity | undefined;
  /** Lists attached interfaces in the pod's network-status annotation; absent (the default), pods are never written. */
  networkStatus?: Pick<NetworkStatusWriter, "report"> | undefined;
  logger: Logger;
}

/** An attach under way: checked and journaled; `done` once its devices are in the pod, configured and reported. */
interface BegunAttach {
  readonly done: Promise<void>;
}

interface PlannedDevice {
  claim: ClaimPlan;
  device: DevicePlan;
  key: string;
}

/** The engine's journal key of one device of one claim. */
export function attachmentKey(claimUid: string, device: string): string {
  return `${claimUid}:${device}`;
}

export class PodNetwork implements NriHandlers, AttachedDevices {
  readonly #options: PodNetworkOptions;
  /** Background work started by Synchronize; awaited at close. */
  #resync: Promise<void> = Promise.resolve();
  /** Pods whose attach began after the last Synchronize: not in its list, yet running. */
  #begunSinceSync = new Set<string>();
  /** Attaches still running (or failed) after RunPodSandbox answered, by pod UID. */
  readonly #attaching = new Map<string, Promise<void>>();
  /** DRA device names inside pods, for the inventory (it keeps publishing them as they were). */
  #attached: ReadonlySet<string> = new Set();
  /**
   * Devices of attaches begun and not yet settled, with how many: the journal may not list
   * them yet when another pod's attach or detach reads it again, and they leave the host
   * meanwhile.
   */
  readonly #moving = new Map<string, number>();
  readonly #attachedListeners = new Set<() => void>();
  readonly #shared: SharedClaims;
  readonly #activity: AttachActivity;

  constructor(options: PodNetworkOptions) {
    this.#options = options;
    this.#activity = options.activity ?? new AttachActivity();
    this.#shared = new SharedClaims({
      claims: options.claims,
      consumers: options.consumers,
      attachments: () => options.engine.attachments(),
      status: options.status,
      logger: options.logger,
    });
  }

  attachedDevices(): ReadonlySet<string> {
    return this.#attached;
  }

  onAttachedChange(listener: () => void): () => void {
    this.#attachedListeners.add(listener);
    return () => this.#attachedListeners.delete(listener);
  }

  #markAttaching(devices: readonly string[]): void {
    this.#attached = new Set([...this.#attached, ...devices]);
  }

  #beginMoving(devices: readonly string[]): void {
    for (const device of devices) this.#moving.set(device, (this.#moving.get(device) ?? 0) + 1);
    this.#markAttaching(devices);
  }

  /** Ends what #beginMoving began and reads the journal again: from now on it says where the devices are. */
  async #endMoving(devices: readonly string[]): Promise<void> {
    for (const device of devices) {
      const count = (this.#moving.get(device) ?? 0) - 1;
      if (count > 0) this.#moving.set(device, count);
      else this.#moving.delete(device);
    }
    await this.refreshAttached();
  }

  /**
   * Counts the devices of a claim left to Multus as in a pod from its prepare on: Multus's CNI
   * plugin moves them there before the runtime tells netclaim of the pod, and a host scan
   * meanwhile must not drop them from the ResourceSlice.
   */
  claimPrepared(plan: ClaimPlan): void {
    this.#markAttaching(plan.devices.filter((d) => d.mode === "multus").map((d) => d.device));
  }

  /**
   * Re-reads which devices sit in pods, where host scans cannot see them: those the engine
   * attached, those of prepared claims left to Multus, and those whose attach is under way.
   */
  async refreshAttached(): Promise<void> {
    const [keys, plans] = await Promise.all([this.#options.engine.attachments(), this.#preparedPlans()]);
    const next = new Set([
      ...keys.map((key) => key.slice(key.lastIndexOf(":") + 1)),
      ...plans.filter((p) => p.device.mode === "multus").map((p) => p.device.device),
      ...this.#moving.keys(),
    ]);
    const changed = next.size !== this.#attached.size || [...next].some((d) => !this.#attached.has(d));
    this.#attached = next;
    if (changed) for (const listener of [...this.#attachedListeners]) listener();
  }

  /** The claim, pod and DRA device of every attachment the prepared claims plan, by journal key (for recovery's reports). */
  async attachmentOwners(): Promise<Map<string, AttachmentOwner>> {
    return new Map((await this.#preparedPlans()).map((p) => [p.key, { claim: p.claim.claim, pod: p.claim.pod, device: p.device.device, shareID: p.device.shareID }]));
  }

  /**
   * Writes the interfaces recovery attached again into their devices' metadata
   * files: an agent killed between an attach and that write, or a child made
   * again in its pod, would leave the containers reading none or an old one.
   */
  async recordReattached(attached: readonly AttachResult[]): Promise<void> {
    if (attached.length === 0) return;
    const byKey = new Map((await this.#preparedPlans()).map((p) => [p.key, p]));
    await recordMetadata(attached.flatMap((result) => attachedNetworkData(byKey.get(result.key), result)), this.#options.logger);
  }

  async runPodSandbox(pod: PodSandboxInfo, ctx: HandlerContext): Promise<void> {
    await this.#activity.track(() => this.#startPod(pod, ctx));
  }

  async #startPod(pod: PodSandboxInfo, ctx: HandlerContext): Promise<void> {
    const since = performance.now();
    const plans = await this.#preparedPlans();
    // Whether the pod also consumes a claim another pod holds is the API server's to say
    // (shared-claims.ts): asked while the pod's own devices attach, not before them.
    const admission = this.#shared.admit(pod, () => Promise.resolve(plans), { signal: ctx.signal });
    admission.catch(() => undefined);
    let begun = await this.#beginAttach(pod, { late: false, plans, since, fresh: true });
    this.#track(pod, begun);
    let handedOver: boolean;
    try {
      handedOver = await admission;
    } catch (err) {
      // Refused: the devices of its own claims go back before its sandbox fails.
      await this.#detachPod(pod);
      throw err;
    }
    // A claim whose holder is gone was handed to this pod: its devices attach too.
    if (handedOver) {
      begun = joinAttaches(begun, await this.#beginAttach(pod, { late: false }));
      this.#track(pod, begun);
    }
  }

  /** Holds the pod's first containers until its interfaces are attached. */
  async createContainer(pod: PodSandboxInfo, _container: ContainerInfo, ctx: HandlerContext): Promise<ContainerAdjustmentSpec | undefined> {
    const attach = this.#attaching.get(pod.uid);
    if (attach === undefined) {
      // A sandbox this agent did not see start was never checked for a claim another pod holds.
      if (await this.#shared.admit(pod, () => this.#preparedPlans(), { signal: ctx.signal, cached: true })) {
        const begun = await this.#beginAttach(pod, { late: false });
        this.#track(pod, begun);
        await begun?.done;
      }
      return undefined;
    }
    try {
      await attach;
    } catch {
      // That attempt failed, was rolled back and reported; this container
      // (a retry by the kubelet) gets a new one, and fails with it.
      const retry = await this.#beginAttach(pod, { late: false });
      this.#track(pod, retry);
      await retry?.done;
    }
    return undefined;
  }

  async stopPodSandbox(pod: PodSandboxInfo): Promise<void> {
    await this.#detachPod(pod);
  }

  async removePodSandbox(pod: PodSandboxInfo): Promise<void> {
    this.#shared.forget(pod.uid);
    // Gone for good: the next Synchronize's list cannot have it either.
    this.#begunSinceSync.delete(pod.uid);
    await this.#detachPod(pod);
  }

  /** Remembers a pod's attach until it succeeds; a failed one stays for CreateContainer to retry. */
  #track(pod: PodSandboxInfo, begun: BegunAttach | undefined): void {
    if (begun === undefined) {
      this.#attaching.delete(pod.uid);
      return;
    }
    const { done } = begun;
    this.#attaching.set(pod.uid, done);
    done.then(
      () => {
        if (this.#attaching.get(pod.uid) === done) this.#attaching.delete(pod.uid);
      },
      () => undefined,
    );
  }

  /** Waits until no attach of the pod is running, whatever its outcome, and forgets it. */
  async #attachSettled(podUID: string): Promise<void> {
    const attach = this.#attaching.get(podUID);
    this.#attaching.delete(podUID);
    await attach?.catch(() => undefined);
  }

  synchronize(state: SynchronizedState): void {
    this.#shared.retain(state.pods.map((pod) => pod.uid));
    const begunSince = new Set<string>();
    this.#begunSinceSync = begunSince;
    // Answer the runtime at once; catching up may take longer than its timeout.
    this.#resync = this.#resync.then(() => this.#catchUp(state, begunSince)).catch((err: unknown) => {
      this.#options.logger.error({ err: errorMessage(err) }, "re-synchronizing pod interfaces failed");
    });
  }

  /**
   * Waits for background work to finish: re-synchronization, and attaches
   * that RunPodSandbox left running (so a stopping agent leaves none
   * half-way, although the journal would let the next one finish it).
   */
  async settle(): Promise<void> {
    await this.#resync;
    await Promise.all([...this.#attaching.values()].map((attach) => attach.catch(() => undefined)));
  }

  /**
   * Brings the pods the runtime listed (`state`) and the journal together:
   * attachments recorded in a namespace that is gone while their pod runs
   * in another are pointed at it; running pods get what they are missing
   * (late); attachments of pods that are gone go back to the host, except
   * those of pods whose attach began after the runtime made its list
   * (`begunSince`).
   */
  async #catchUp(state: SynchronizedState, begunSince: ReadonlySet<string>): Promise<void> {
    const { logger, engine, recovery } = this.#options;
    await Promise.all([...this.#attaching.values()].map((attach) => attach.catch(() => undefined)));
    const running = runningPods(state.pods);
    const plans = await this.#preparedPlans();
    await recovery.retarget(new Map(plans.flatMap((p) => {
      const netns = running.get(p.claim.pod.uid)?.netnsPath;
      return netns === undefined || p.device.mode !== "native" ? [] : [[p.key, netns] as const];
    })));
    const attached = new Set(await engine.attachments());
    for (const pod of running.values()) {
      const missing = plans.filter((p) => p.claim.pod.uid === pod.uid && p.device.mode === "native" && !attached.has(p.key));
      if (missing.length === 0) continue;
      logger.warn({ pod: `${pod.namespace}/${pod.name}`, devices: missing.map((m) => m.device.device) }, "pod is running without its interfaces; attaching them late");
      await this.#beginAttach(pod, { late: true })
        .then((begun) => begun?.done)
        .catch((err: unknown) => {
          logger.error({ pod: `${pod.namespace}/${pod.name}`, err: errorMessage(err) }, "late attach failed");
        });
    }
    // Attachments whose pod the runtime no longer has go back to the host.
    const byKey = new Map(plans.map((p) => [p.key, p]));
    const orphans = [...attached].filter((key) => {
      const plan = byKey.get(key);
      return plan === undefined || !(running.has(plan.claim.pod.uid) || begunSince.has(plan.claim.pod.uid));
    });
    if (orphans.length > 0) {
      logger.info({ attachments: orphans }, "restoring devices of pods that are gone");
      await engine.detach(orphans).finally(() => this.refreshAttached());
    }
    logger.info({ pods: running.size, restored: orphans.length }, "re-synchronized pod interfaces");
  }

  /**
   * Checks and journals the attach of the pod's devices (an error here is
   * the runtime's to see at once), and returns the rest of the work, which
   * reports status when it ends; undefined when there is nothing to attach.
   */
  async #beginAttach(pod: PodSandboxInfo, options: BeginOptions): Promise<BegunAttach | undefined> {
    const { engine, netlink, logger } = this.#options;
    const since = options.since ?? performance.now();
    this.#begunSinceSync.add(pod.uid);
    const planned = (options.plans ?? (await this.#preparedPlans())).filter((p) => p.claim.pod.uid === pod.uid);
    if (planned.length === 0) return undefined;
    const log = logger.child({ pod: `${pod.namespace}/${pod.name}`, podUID: pod.uid });
    const delegated = planned.filter((p) => p.device.mode === "multus");
    if (delegated.length > 0) await this.#reportDelegated(pod, delegated, log);
    const candidates = planned.filter((p) => p.device.mode === "native");
    if (candidates.length === 0) return undefined;
    const netns = pod.netnsPath;
    // Who has each name already, as far as the pod's Multus annotation tells.
    const multus = multusInterfaceOwners(pod.annotations, pod.namespace);
    const attach = { pod, netns, multus, log, late: options.late, since };
    const guessing = options.fresh === true && netns !== undefined;
    if (guessing) {
      // A sandbox that has just started holds none of the pod's devices, and
      // the names its interfaces take from the runtime (eth0) and Multus
      // (those of its annotation) are known: the attach begins on names chosen
      // against the annotation's, and the engine's check, which lists the
      // pod's links anyway, catches a name taken after all. Only then are the
      // links read here and the names chosen again: one round trip to the
      // engine's thread before the first device moves, not two (docs/engine.md).
      this.#warnIfUnguarded(pod, log);
      const begun = await this.#begin(candidates, { ...attach, netns, existing: multus, podLinks: undefined });
      if (begun !== undefined) return begun;
    }
    // The pod's links and which devices are in it already: two questions to the engine's thread, asked at once.
    const podLinksRead = netns === undefined ? undefined : netlink.batch(netns, [{ op: "listLinks" }] as const);
    podLinksRead?.catch(() => undefined);
    const already = new Set(await engine.attached(candidates.map((p) => p.key)));
    const native = candidates.filter((p) => !already.has(p.key));
    if (native.length === 0) return undefined;
    if (!options.late && !guessing) this.#warnIfUnguarded(pod, log);
    if (netns === undefined || podLinksRead === undefined) {
      this.#fail(pod, native, "the pod uses the host network, so there is no pod network namespace to move its netclaim devices into");
    }
    const [podLinks] = await podLinksRead;
    const existing = new Map(podLinks.map((link) => [link.name, multus.get(link.name) ?? "an interface already in the pod"]));
    return this.#begin(native, { ...attach, netns, existing, podLinks });
  }

  /**
   * Names the devices against `existing` and begins their attach. Without
   * `podLinks` the names are a guess (see #beginAttach): a guess that fails,
   * whether the naming or the engine's check of the names, is undefined,
   * not an error.
   */
  async #begin(native: readonly PlannedDevice[], attach: AttachNaming): Promise<BegunAttach | undefined> {
    const { pod, netns, multus, existing, podLinks } = attach;
    const guess = podLinks === undefined;
    const inputs = new Map<NamingInput, PlannedDevice>();
    for (const p of native) {
      inputs.set({ claim: `${p.claim.claim.namespace}/${p.claim.claim.name}`, request: p.device.request, device: p.device.device, requestedName: p.device.interface.name }, p);
    }
    const naming = assignInterfaceNames([...inputs.keys()], existing);
    if (!naming.ok) {
      if (guess) return undefined;
      this.#fail(pod, native, multus.has(naming.name) ? `${naming.message}; ${MULTUS_RENAME_HINT}` : naming.message);
    }
    const plans: AttachmentPlanInput[] = [];
    for (const [input, p] of inputs) {
      const podName = naming.names.get(input) ?? "";
      plans.push(engineplan(p, netns, podName, this.#options.rdmaMode));
    }
    // Moving devices vanish from host scans: count them as attached from now on.
    const moving = native.map((p) => p.device.device);
    this.#beginMoving(moving);
    let begun: { done: Promise<AttachResult[]> };
    try {
      begun = await this.#options.engine.begin(plans, podLinks === undefined ? {} : { podLinks });
    } catch (err) {
      await this.#endMoving(moving);
      if (guess && err instanceof EngineError && err.code === "ENGINE_NAME_COLLISION") return undefined;
      this.#fail(pod, native, errorMessage(err), err);
    }
    const done = this.#finishAttach(pod, native, begun.done, { late: attach.late, since: attach.since, checked: performance.now() }, attach.log);
    // Awaited by CreateContainer, StopPodSandbox or re-synchronization; a failure is reported where it happens.
    done.catch(() => undefined);
    return { done };
  }

  /**
   * Reports each device left to Multus, with the interface Multus made of it when it is in the
   * pod. Multus, not netclaim, decides whether the pod runs: a device not found, or a namespace
   * that cannot be read, only leaves the interface out of the status.
   */
  async #reportDelegated(pod: PodSandboxInfo, delegated: readonly PlannedDevice[], log: Logger): Promise<void> {
    const { netlink, status } = this.#options;
    let find: (p: PlannedDevice) => DelegatedInterface | undefined = () => undefined;
    if (pod.netnsPath !== undefined) {
      try {
        const [links, addresses] = await netlink.batch(pod.netnsPath, [{ op: "listLinks" }, { op: "listAddresses" }] as const);
        find = (p) => findDelegatedInterface(p.device.identity, links, addresses);
      } catch (err) {
        log.warn({ err: errorMessage(err) }, "cannot read the pod's interfaces to report the devices Multus configured");
      }
    }
    const metadata: DeviceNetworkData[] = [];
    for (const p of delegated) {
      const found = find(p);
      if (found !== undefined && p.device.metadataFile !== undefined) {
        metadata.push({ file: p.device.metadataFile, device: p.device.device, networkData: { interfaceName: found.name, ips: found.addresses, hardwareAddress: found.hardwareAddress } });
      }
      status.setDevice(p.claim.claim, p.device, {
        kind: "delegated",
        resourceName: p.device.resourceName ?? "",
        ...(found === undefined ? {} : { interfaceName: found.name, addresses: found.addresses, ...(found.hardwareAddress === undefined ? {} : { hardwareAddress: found.hardwareAddress }) }),
      });
    }
    // RunPodSandbox awaits this, so the runtime creates no container before the files say it.
    await recordMetadata(metadata, log);
  }

  /**
   * A pod whose containers the runtime may create while this plugin is not
   * registered (the pod does not require it) gets its interfaces only while
   * the agent runs: say so where an operator looks first.
   */
  #warnIfUnguarded(pod: PodSandboxInfo, log: Logger): void {
    const required = requiredPlugins(pod.annotations);
    const name = this.#options.nriPluginName;
    if (required.kind === "invalid") {
      log.warn({ annotation: required.key, reason: required.reason }, "the pod's required-plugins annotation is not a list of plugin names; a runtime with NRI's default validator refuses its containers");
    } else if (required.kind === "absent" || !required.plugins.includes(name)) {
      log.warn(
        { annotation: `${REQUIRED_PLUGINS_ANNOTATION}/pod`, plugin: name },
        "the pod does not require netclaim's NRI plugin, so its containers would start without their interfaces if netclaim were down; apply deploy/required-plugin (docs/install.md, \"Required plugin\")",
      );
    }
  }

  async #finishAttach(pod: PodSandboxInfo, native: readonly PlannedDevice[], done: Promise<AttachResult[]>, options: FinishOptions, log: Logger): Promise<void> {
    const { status } = this.#options;
    let results: AttachResult[];
    let attached = Number.NaN;
    try {
      results = await done;
      attached = performance.now();
    } catch (err) {
      this.#fail(pod, native, errorMessage(err), err);
    } finally {
      await this.#endMoving(native.map((p) => p.device.device));
    }
    const byKey = new Map(native.map((p) => [p.key, p]));
    const interfaces: AttachedInterface[] = [];
    const metadata: DeviceNetworkData[] = [];
    for (const result of results) {
      const p = byKey.get(result.key);
      if (p === undefined) continue;
      metadata.push(...attachedNetworkData(p, result));
      status.setDevice(p.claim.claim, p.device, {
        kind: "attached",
        interfaceName: result.podName,
        addresses: result.addresses,
        ...(result.mac !== undefined ? { hardwareAddress: result.mac } : {}),
        late: options.late,
      });
      interfaces.push({ claim: p.claim.claim, request: p.device.request, interfaceName: result.podName, addresses: result.addresses, mac: result.mac, mtu: p.device.interface.mtu });
    }
    // CreateContainer awaits this attach, so the pod's first container already reads its interfaces in the files.
    await recordMetadata(metadata, log);
    this.#options.networkStatus?.report(pod, interfaces);
    const ms = (at: number) => Math.round((at - options.since) * 100) / 100;
    // Where a slow pod start spent its time (docs/troubleshooting.md): until the devices were checked and journaled, and until they were configured in the pod.
    log.info({ interfaces: results.map((r) => r.podName), late: options.late, ms: { checked: ms(options.checked), attached: ms(attached) } }, "attached netclaim interfaces");
  }

  /**
   * Restores the devices of a sandbox that stops or goes. A pod's sandbox
   * the runtime replaced (its pause process died) is stopped and removed
   * after the new one started: only what is in this sandbox goes back.
   */
  async #detachPod(sandbox: PodSandboxInfo): Promise<void> {
    await this.#attachSettled(sandbox.uid);
    const planned = (await this.#preparedPlans()).filter((p) => p.claim.pod.uid === sandbox.uid && p.device.mode === "native");
    if (planned.length === 0) return;
    const outcomes = await this.#options.engine.detach(planned.map((p) => p.key), { sandbox: { netns: sandbox.netnsPath } }).finally(() => this.refreshAttached());
    // "kept": the device is in another live sandbox of the pod, which the runtime started in place of this one.
    this.#options.logger.info(
      { pod: `${sandbox.namespace}/${sandbox.name}`, podUID: sandbox.uid, sandbox: sandbox.id, netns: sandbox.netnsPath ?? null, outcomes: Object.fromEntries(outcomes) },
      "detached netclaim interfaces",
    );
    for (const p of planned) {
      const outcome = outcomes.get(p.key);
      if (outcome === "unknown" || outcome === "kept") continue;
      this.#options.status.setDevice(p.claim.claim, p.device, { kind: "prepared" });
    }
  }

  #fail(pod: PodSandboxInfo, devices: readonly PlannedDevice[], message: string, cause?: unknown): never {
    const { status } = this.#options;
    const reason = cause === undefined ? "InvalidConfig" : "AttachFailed";
    for (const p of devices) {
      status.setDevice(p.claim.claim, p.device, { kind: "failed", reason, message });
      status.event(
        { apiVersion: "resource.k8s.io/v1", kind: "ResourceClaim", namespace: p.claim.claim.namespace, name: p.claim.claim.name, uid: p.claim.claim.uid },
        "Warning",
        "NetworkDeviceAttachFailed",
        `device ${p.device.device}: ${message}`,
      );
    }
    status.event({ apiVersion: "v1", kind: "Pod", namespace: pod.namespace, name: pod.name, uid: pod.uid }, "Warning", "NetworkDeviceAttachFailed", message);
    // A normal error status fails the sandbox: the kubelet retries, and the pod never runs without its interfaces.
    throw new NriHandlerError(StatusCode.FAILED_PRECONDITION, `netclaim cannot attach the interfaces of pod ${pod.namespace}/${pod.name}: ${message}`, cause === undefined ? {} : { cause });
  }

  async #preparedPlans(): Promise<PlannedDevice[]> {
    const out: PlannedDevice[] = [];
    for (const record of await this.#options.claims.list()) {
      if (record.state !== "prepared") continue;
      let plan: ClaimPlan;
      try {
        plan = parseClaimPlan(record.plan, `claim ${record.claim.namespace}/${record.claim.name}`);
      } catch (err) {
        this.#options.logger.error({ claim: record.claim.uid, err: errorMessage(err) }, "skipping a claim whose stored plan is unreadable");
        continue;
      }
      for (const device of plan.devices) out.push({ claim: plan, device, key: attachmentKey(plan.claim.uid, device.device) });
    }
    return out;
  }
}

interface BeginOptions {
  /** Attached on re-synchronization, after the pod's sandbox started without this agent. */
  late: boolean;
  /** The prepared devices, when the caller has just read them. */
  plans?: readonly PlannedDevice[];
  /** When the pod's start reached the agent (performance.now()), for the timings logged. */
  since?: number;
  /** At RunPodSandbox: the sandbox has just started, so none of the pod's devices is in it yet. */
  fresh?: boolean;
}

interface AttachNaming {
  pod: PodSandboxInfo;
  netns: string;
  /** The names the pod's Multus annotation gives, and to which network. */
  multus: ReadonlyMap<string, string>;
  /** The names taken in the pod, and by what. */
  existing: ReadonlyMap<string, string>;
  /** The pod's links as read; undefined when `existing` is a guess. */
  podLinks: readonly Link[] | undefined;
  log: Logger;
  late: boolean;
  since: number;
}

interface FinishOptions {
  late: boolean;
  since: number;
  /** When the engine had checked and journaled the devices. */
  checked: number;
}

/** One attach made of two begun one after the other (a claim handed over after the pod's own). */
function joinAttaches(first: BegunAttach | undefined, second: BegunAttach | undefined): BegunAttach | undefined {
  if (first === undefined || second === undefined) return first ?? second;
  const done = Promise.all([first.done, second.done]).then(() => undefined);
  done.catch(() => undefined);
  return { done };
}

/**
 * Writes the pod's interfaces into the devices' metadata files (KEP-5304). A
 * failure is logged, not the attach's: the interfaces are there, only what
 * the containers read of them is not.
 */
async function recordMetadata(entries: readonly DeviceNetworkData[], log: Logger): Promise<void> {
  if (entries.length === 0) return;
  try {
    await recordNetworkData(entries);
  } catch (err) {
    log.error({ err: errorMessage(err) }, "cannot write the pod's interfaces into its device metadata files");
  }
}

/** What a device's metadata file says of its interface once attached; nothing for a device without one. */
function attachedNetworkData(p: PlannedDevice | undefined, result: AttachResult): DeviceNetworkData[] {
  const file = p?.device.metadataFile;
  if (p === undefined || file === undefined) return [];
  return [{ file, device: p.device.device, networkData: { interfaceName: result.podName, ips: result.addresses, hardwareAddress: result.mac } }];
}

/** The engine's attachment plan for one device. */
function engineplan(p: PlannedDevice, netns: string, podName: string, rdmaMode: "shared" | "exclusive"): AttachmentPlanInput {
  const { device } = p;
  const sysctls: Record<string, string> = {};
  for (const [key, value] of Object.entries(device.interface.sysctls)) {
    // "ipv4.arp_ignore" → net.ipv4.conf.<podName>.arp_ignore
    const [family, leaf] = key.split(".", 2);
    sysctls[`net.${family ?? ""}.conf.${podName}.${leaf ?? ""}`] = value;
  }
  return {
    key: p.key,
    device: device.identity,
    netns,
    podName,
    ...(device.interface.mtu !== undefined ? { mtu: device.interface.mtu } : {}),
    ...(device.interface.hardwareAddress !== undefined ? { mac: device.interface.hardwareAddress } : {}),
    addresses: device.interface.addresses,
    routes: device.routes,
    sysctls,
    ...(device.rdma !== undefined ? { rdma: { device: device.rdma.device, mode: rdmaMode } } : {}),
    ...(device.child !== undefined ? { child: device.child } : {}),
  };
}
