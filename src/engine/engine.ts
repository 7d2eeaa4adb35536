/**
 * The attach engine: moves planned devices into a pod's network namespace,
 * configures them, and restores them to the host exactly as they were.
 *
 * Crash safety: before the first kernel change of an attach or a detach the
 * journal record (plan, original host state, intent) is durably written.
 * Every step looks at the kernel before acting and is safe to repeat, so
 * recover() re-runs the steps toward the recorded intent, after a crash or
 * at any time beside the agent's attaches and detaches (per-attachment
 * locks keep them apart); recovery.ts decides what each record becomes, and
 * no attachment's outcome, a device lost included, ever stops recovery.
 */
import {
  IFA_F_NODAD, NetlinkError, networkOf, cidrParts, RT_SCOPE,
  type Address, type AddressSpec, type BatchRunner, type Link, type LinkState, type Op, type PlacedOp, type RouteSpec,
} from "../netlink/index.ts";
import { errorMessage } from "../common/errors.ts";
import type { StateStore, Collection } from "../store/index.ts";
import { AttachGate } from "./attach-gate.ts";
import { EngineError, InjectedCrash, rollbackFailed, type EngineErrorCode } from "./errors.ts";
import { addressSpecFor, captureHostState, findPlannedDevice, findRecordedDevice, routeSpecFor } from "./host-state.ts";
import { openJournal, type HostState, type JournalRecord } from "./journal.ts";
import { KeyLocks } from "./key-locks.ts";
import { inAnotherSandbox, lostError, recoverRecord, retargeted, type RecoveryResult, type RecoverySteps } from "./recovery.ts";
import { attachmentPlanSchema, describeDevice, parseSysctlKey, type AttachmentPlan, type AttachmentPlanInput } from "./plan.ts";

/** The RDMA operations the engine needs; by default they run as netlink batches. */
export interface RdmaOps {
  rdmaListDevices(): Promise<{ index: number; name: string }[]>;
  rdmaSetNetns(index: number, device: string, netns: string): Promise<null>;
}

export type AttachStep = "move" | "configure" | "set-up" | "routes" | "rdma" | "verify";
export type DetachStep = "rdma-return" | "move-out" | "restore-link" | "restore-addresses" | "restore-up" | "restore-routes" | "forget";
export type Step = AttachStep | DetachStep;

export interface EngineOptions {
  netlink: BatchRunner;
  store: StateStore;
  /** Defaults to batches on `netlink`; tests on kernels without RDMA pass a double. */
  rdma?: RdmaOps;
  /** Test hook: called before every step; throw InjectedCrash to stop there as if killed. */
  beforeStep?: (step: Step, key: string) => void;
  /**
   * Where attach gates live (attach-gate.ts): a file per attachment that
   * exists while its device is attached in its pod. Without it, none are kept.
   */
  gateDir?: string;
}

/** The operations of one step of one device. */
interface PlannedStep {
  plan: AttachmentPlan;
  step: Step;
  /** Where the step's operations run; undefined: the agent's namespace. */
  netns: string | undefined;
  ops: Op[];
  /** Its operations may share a datagram with the ones before them (see PlacedOp.pipelined). */
  pipelined?: boolean;
}

/** What attaching one device still takes once it is (or is about to be) in its pod. */
interface AttachWork {
  plan: AttachmentPlan;
  /** The device's ifindex inside the pod. */
  index: number;
  /** The move (when it is still to be made), configuration, up, routes. */
  steps: PlannedStep[];
  /** Reads the device and its addresses back. */
  verify: PlannedStep;
}

export interface AttachResult {
  key: string;
  podName: string;
  ifindex: number;
  mac: string | undefined;
  addresses: string[];
}

/** kept: the attachment is in another live sandbox of the pod than the one stopping (see DetachOptions). */
export type DetachOutcome = "restored" | "gone" | "unknown" | "kept";

export interface DetachOptions {
  /**
   * The pod sandbox that is stopping or being removed, by its network
   * namespace (undefined once the runtime no longer reports one, as at
   * RemovePodSandbox): only attachments recorded in it, or in a namespace
   * that is gone, are restored. One recorded in another namespace that
   * exists belongs to a sandbox that replaced this one, and is kept.
   */
  sandbox?: { netns: string | undefined };
}

/** What the agent asks of an attach engine, wherever it runs (AttachEngine, EngineThread). */
export interface Attacher {
  /**
   * Checks and journals the attach of one pod's devices, then resolves
   * with `done` for the moves and the configuration that follow.
   */
  begin(inputs: readonly AttachmentPlanInput[], options?: { podLinks?: readonly Link[] }): Promise<{ done: Promise<AttachResult[]> }>;
  attach(inputs: readonly AttachmentPlanInput[]): Promise<AttachResult[]>;
  detach(keys: readonly string[], options?: DetachOptions): Promise<Map<string, DetachOutcome>>;
  recover(): Promise<Map<string, RecoveryResult>>;
  retarget(targets: ReadonlyMap<string, string>): Promise<Map<string, RecoveryResult>>;
  attachments(): Promise<string[]>;
  attached(): Promise<string[]>;
}

export interface BeginOptions {
  /** The pod's links, when the caller has just listed them: saves a lookup. */
  podLinks?: readonly Link[];
  /**
   * Called once every plan is checked and journaled, before the first
   * device moves: where netlink batches run synchronously (on the engine's
   * own thread) the moves are over by the time begin resolves, and a caller
   * that must pass the news on at once (to another thread) does it here.
   */
  onChecked?: () => void;
}

/** A journaled attachment, with the host device and the pod's ifindexes when it is a fresh one. */
interface PreparedAttachment {
  record: JournalRecord;
  onHost?: Link;
  podIndexes?: ReadonlySet<number>;
}

/** The agent's own namespace, as a path the netlink worker can open. */
const HOST_NETNS = "/proc/self/ns/net";

export class AttachEngine implements Attacher {
  readonly #nl: BatchRunner;
  readonly #journal: Collection<JournalRecord>;
  readonly #rdma: RdmaOps;
  readonly #beforeStep: (step: Step, key: string) => void;
  readonly #locks = new KeyLocks();
  readonly #recoverySteps: RecoverySteps;
  /**
   * Attachments this engine attached, or recovered as attached, and has not
   * detached since. Recovery only checks that their device is still in the
   * pod (see recover()); at an agent's start the set is empty.
   */
  readonly #settled = new Set<string>();
  readonly #gate: AttachGate | undefined;

  constructor(options: EngineOptions) {
    this.#nl = options.netlink;
    this.#journal = openJournal(options.store);
    const nl = options.netlink;
    this.#rdma = options.rdma ?? {
      rdmaListDevices: async () => (await nl.batch(undefined, [{ op: "rdmaListDevices" }] as const))[0],
      rdmaSetNetns: async (index, device, netns) => (await nl.batch(undefined, [{ op: "rdmaSetNetns", index, device, netns }] as const))[0],
    };
    this.#beforeStep = options.beforeStep ?? (() => undefined);
    this.#gate = options.gateDir === undefined ? undefined : new AttachGate(options.gateDir);
    this.#recoverySteps = {
      journal: this.#journal,
      attach: (record) => this.#attachOne(record),
      restore: async (record) => ((await this.#detachOne(record)) === "restored" ? "restored" : "gone"),
    };
  }

  /**
   * Attaches every plan of one pod, in order of pod-side name. Nothing moves
   * unless every device is found and every pod-side name is free. If a step
   * fails, the devices of this call are restored and the error names the
   * device and the step.
   */
  async attach(inputs: readonly AttachmentPlanInput[]): Promise<AttachResult[]> {
    return (await this.begin(inputs)).done;
  }

  /**
   * Attach in two halves: resolves once every plan is checked against the
   * host and the pod and journaled (so every error a caller could act on up
   * front has been thrown), with `done` for the kernel work that follows:
   * the moves and the configuration. A caller can let the pod's start go on
   * meanwhile and wait for `done` where it must.
   */
  async begin(inputs: readonly AttachmentPlanInput[], options: BeginOptions = {}): Promise<{ done: Promise<AttachResult[]> }> {
    const plans = inputs.map((p) => parsePlan(p)).sort((a, b) => (a.podName < b.podName ? -1 : a.podName > b.podName ? 1 : 0));
    if (plans.length === 0) return { done: Promise.resolve([]) };
    const release = await this.#locks.acquire(plans.map((p) => p.key));
    let records: PreparedAttachment[];
    try {
      records = await this.#prepare(plans, options.podLinks);
    } catch (err) {
      release();
      throw err;
    }
    options.onChecked?.();
    const done = this.#attachAll(records).finally(release);
    // Handled by whoever awaits `done`; a failure must never count as unhandled before that.
    done.catch(() => undefined);
    return { done };
  }

  async #attachAll(records: readonly PreparedAttachment[]): Promise<AttachResult[]> {
    try {
      // Exclusive RDMA devices need a step outside rtnetlink between
      // configuring and verifying: those pods attach device by device.
      if (records.some(({ record }) => record.plan.rdma?.mode === "exclusive")) {
        const results: AttachResult[] = [];
        for (const { record, onHost, podIndexes } of records) results.push(await this.#attachOne(record, onHost, podIndexes));
        for (const { record } of records) this.#settle(record.plan);
        return results;
      }
      // Everything else, every device's move, configuration and read-back,
      // goes to the worker in one batch: one round trip for the whole pod.
      const works: AttachWork[] = [];
      for (const { record, onHost, podIndexes } of records) works.push(await this.#placeInPod(record, onHost, podIndexes));
      const results = await this.#runSteps(works.flatMap((w) => [...w.steps, w.verify]));
      let offset = 0;
      const attached = works.map((work) => {
        offset += work.steps.reduce((n, s) => n + s.ops.length, 0) + work.verify.ops.length;
        return verified(work, results.slice(offset - work.verify.ops.length, offset));
      });
      for (const { record } of records) this.#settle(record.plan);
      return attached;
    } catch (err) {
      if (err instanceof InjectedCrash) throw err;
      const failures: unknown[] = [];
      for (const { record } of records) {
        const failure = await this.#rollBack(record);
        if (failure instanceof InjectedCrash) throw failure;
        if (failure !== undefined) failures.push(failure);
      }
      throw failures.length === 0 ? err : rollbackFailed(err, failures);
    }
  }

  /**
   * Restores each attachment to the host and forgets it. Unknown keys are
   * "unknown"; with `options.sandbox`, one in another live sandbox of its
   * pod is "kept".
   */
  async detach(keys: readonly string[], options: DetachOptions = {}): Promise<Map<string, DetachOutcome>> {
    const sorted = [...keys].sort();
    const release = await this.#locks.acquire(sorted);
    try {
      const out = new Map<string, DetachOutcome>();
      const records: JournalRecord[] = [];
      for (const key of sorted) {
        const record = await this.#journal.get(key);
        if (record === undefined) out.set(key, "unknown");
        else if (options.sandbox !== undefined && (await inAnotherSandbox(record, options.sandbox.netns))) out.set(key, "kept");
        else records.push({ ...record, intent: "detach" });
      }
      // All intents are durable before the first device moves.
      await Promise.all(records.map((r) => this.#journal.put(r.plan.key, r)));
      const done: string[] = [];
      try {
        for (const record of records) {
          // Closed before the device leaves the pod: a container created from here on fails.
          this.#unsettle(record.plan.key);
          out.set(record.plan.key, await this.#detachOne(record));
          done.push(record.plan.key);
        }
      } finally {
        await Promise.all(done.map((key) => this.#journal.delete(key)));
      }
      return out;
    } finally {
      release();
    }
  }

  /**
   * Moves every journaled attachment toward its intent: one whose intent is
   * "attach" and whose pod namespace exists is attached fully; one whose
   * device is in neither that pod nor the host becomes "lost" (and stays so
   * until its pod is gone); one whose recorded namespace is gone is
   * restored when its device is back on the host, and otherwise kept as
   * "unplaced" (see retarget); every other one is restored to the host and
   * forgotten. Safe to run at any time: an attachment another call is
   * working on is left to it (and absent from the result), and a failure is
   * that attachment's outcome, never the end of recovery.
   *
   * An attachment this engine settled itself is only looked for in its pod:
   * found there, it is left exactly as the workload keeps it (absent from
   * the result), since running its steps again would bring up an interface
   * the workload set down or put back an address it removed. At an agent's
   * start nothing is settled, so every attachment gets its steps.
   */
  async recover(): Promise<Map<string, RecoveryResult>> {
    const keys = (await this.#journal.list()).map(([key]) => key);
    return this.#recoverEach(keys, async (record) => {
      const settled = this.#settled.has(record.plan.key) && record.intent === "attach" && (await this.#locateInPod(record)) !== undefined;
      return settled ? undefined : record;
    });
  }

  /**
   * Points attachments at the namespace their pod runs in now (`targets`:
   * journal key to namespace path, as the runtime reports the pod's live
   * sandbox), where the namespace recorded is gone: the runtime replaced the
   * pod's sandbox, or the namespace is reachable under another path. The
   * device is then looked for there by its identity (and attached from the
   * host if it came back there, or recorded as lost). Attachments whose
   * recorded namespace still exists are left alone, and absent from the
   * result.
   */
  async retarget(targets: ReadonlyMap<string, string>): Promise<Map<string, RecoveryResult>> {
    return this.#recoverEach([...targets.keys()], async (record) => {
      const moved = await retargeted(record, targets.get(record.plan.key));
      if (moved !== undefined) await this.#journal.put(moved.plan.key, moved);
      return moved;
    });
  }

  /**
   * Recovers the record of each key that `select` returns (or skips), one
   * key at a time, never one that another call is working on; a failure is
   * that key's outcome.
   */
  async #recoverEach(
    keys: readonly string[],
    select: (record: JournalRecord) => JournalRecord | undefined | Promise<JournalRecord | undefined>,
  ): Promise<Map<string, RecoveryResult>> {
    const out = new Map<string, RecoveryResult>();
    for (const key of keys) {
      const release = this.#locks.tryAcquire(key);
      if (release === undefined) continue;
      try {
        // Read under the lock: a listing may predate an attach or detach that has just finished.
        const record = await this.#journal.get(key);
        const selected = record === undefined ? undefined : await select(record);
        if (selected !== undefined) {
          const result = await recoverRecord(selected, this.#recoverySteps);
          if (result.outcome === "attached") this.#settle(selected.plan);
          else this.#unsettle(key);
          out.set(key, result);
        }
      } catch (err) {
        if (err instanceof InjectedCrash) throw err;
        out.set(key, { outcome: "failed", error: errorMessage(err) });
        try {
          this.#unsettle(key);
        } catch {
          // The outcome already says it failed; the next recovery closes the gate.
        }
      } finally {
        release();
      }
    }
    return out;
  }

  /** Marks an attachment done: recovery leaves it as the workload keeps it, and its gate opens. */
  #settle(plan: AttachmentPlan): void {
    this.#gate?.open(plan.key, plan.podName);
    this.#settled.add(plan.key);
  }

  /** The attachment is not (or no longer) known to be in its pod: its gate closes. */
  #unsettle(key: string): void {
    this.#settled.delete(key);
    this.#gate?.close(key);
  }

  /** Keys of the attachments the journal holds, whatever their intent. */
  async attachments(): Promise<string[]> {
    return (await this.#journal.list()).map(([key]) => key);
  }

  /**
   * Keys of the attachments meant to be in their pods. One whose restore
   * failed half-way (intent "detach") is not among them: attaching it again
   * must go through the checks, and fail there, not count as done. Nor is a
   * lost one: its device is nowhere to attach from.
   */
  async attached(): Promise<string[]> {
    return (await this.#journal.list()).filter(([, record]) => record.intent === "attach").map(([key]) => key);
  }

  /** Checks every plan against the host and the pod, then journals the host state. */
  async #prepare(plans: readonly AttachmentPlan[], knownPodLinks: readonly Link[] | undefined): Promise<PreparedAttachment[]> {
    const netns = plans[0]?.netns;
    const first = plans[0];
    if (netns === undefined || first === undefined) return [];
    const other = plans.find((p) => p.netns !== netns);
    if (other !== undefined) fail("ENGINE_PLAN", other, "check-names", `all plans of one attach must target one pod, not both ${netns} and ${other.netns}`);
    // One round trip lists the pod's links (unless the caller did) and
    // looks up every planned device on the host, while the journal is read.
    const podLookup: PlacedOp[] = knownPodLinks === undefined ? [{ netns, op: { op: "listLinks" } }] : [];
    const lookups = [...podLookup, ...plans.map((p) => ({ netns: undefined, op: hostLookup(p) }))];
    const [answers, existingRecords] = await Promise.all([
      this.#nl.batchAcross(lookups).catch((err: unknown) => {
        const i = err instanceof NetlinkError && err.opIndex !== undefined ? err.opIndex - podLookup.length : -1;
        const at = i >= 0 ? plans[i] : undefined;
        throw stepError(at ?? first, at === undefined ? "check-names" : "resolve", err);
      }),
      Promise.all(plans.map((p) => this.#journal.get(p.key))),
    ]);
    const podLinks = knownPodLinks ?? (answers[0] as Link[]);
    const found = answers.slice(podLookup.length) as (LinkState | Link[] | null)[];
    const records: PreparedAttachment[] = [];
    const podIndexes = new Set(podLinks.map((l) => l.index));
    const names = new Map<string, AttachmentPlan>();
    for (const [i, plan] of plans.entries()) {
      const twin = names.get(plan.podName);
      if (twin !== undefined) {
        fail("ENGINE_NAME_COLLISION", plan, "check-names", `pod-side name ${plan.podName} is planned for both ${describeDevice(twin.device)} and ${describeDevice(plan.device)}`);
      }
      names.set(plan.podName, plan);
      const existing = existingRecords[i];
      if (existing?.intent === "attach") {
        records.push({ record: existing });
        continue;
      }
      const { link, addresses, routes } = await this.#resolve(plan, found[i] ?? null);
      const taken = podLinks.find((l) => l.name === plan.podName);
      if (taken !== undefined) {
        fail("ENGINE_NAME_COLLISION", plan, "check-names", `pod ${plan.netns} already has an interface named ${plan.podName} (ifindex ${taken.index}); device ${link.name} cannot take that name`);
      }
      records.push({ record: { plan, intent: "attach", host: captureHostState(link, addresses, routes) }, onHost: link, podIndexes });
    }
    await Promise.all(records.map(({ record }) => this.#journal.put(record.plan.key, record)));
    return records;
  }

  /**
   * The host link the plan names, with its addresses and routes, from the
   * answer to hostLookup(plan): the link's state when the plan gives an
   * ifindex or a name, else a dump of links to find it in first.
   */
  async #resolve(plan: AttachmentPlan, lookedUp: LinkState | Link[] | null): Promise<LinkState> {
    let state: LinkState | null = null;
    if (Array.isArray(lookedUp)) {
      const found = findPlannedDevice(lookedUp, plan.device);
      if (found !== undefined) [state] = await this.#call(plan, "resolve", undefined, [{ op: "linkState", key: { index: found.index } }] as const);
    } else {
      state = lookedUp;
    }
    if (state === null || findPlannedDevice([state.link], plan.device) === undefined) {
      fail("ENGINE_DEVICE_MISSING", plan, "resolve", `no host interface matches ${JSON.stringify(plan.device)}`);
    }
    return state;
  }

  /** Runs the attach steps of one device from wherever it is (see #placeInPod). */
  async #attachOne(record: JournalRecord, onHost?: Link, podIndexes?: ReadonlySet<number>): Promise<AttachResult> {
    const work = await this.#placeInPod(record, onHost, podIndexes);
    const { plan } = work;
    if (plan.rdma?.mode === "exclusive") {
      await this.#runSteps(work.steps);
      this.#step("rdma", plan);
      await this.#moveRdma(plan, plan.netns, "rdma");
      return verified(work, await this.#runSteps([work.verify]));
    }
    return verified(work, (await this.#runSteps([...work.steps, work.verify])).slice(-work.verify.ops.length));
  }

  /**
   * The kernel work that attaches one device, from wherever it is: `onHost`
   * is the device when the caller just found it on the host (a fresh
   * attach), with the ifindexes in use in the pod; otherwise (recovery, a
   * repeated attach) the device is looked for in the pod first. The move is
   * among the returned steps when its pod-side ifindex can be pinned;
   * otherwise it is made here, as it must be before anything in the pod can
   * name the device.
   */
  async #placeInPod(record: JournalRecord, onHost?: Link, podIndexes?: ReadonlySet<number>): Promise<AttachWork> {
    const { plan, host } = record;
    let inPod = onHost === undefined ? await this.#locateInPod(record) : undefined;
    const move: PlannedStep[] = [];
    if (inPod === undefined) {
      let device = onHost;
      if (device === undefined) {
        const [hostLinks] = await this.#call(plan, "move", undefined, [{ op: "listLinks" }] as const);
        device = findRecordedDevice(hostLinks, host, plan);
      }
      if (device === undefined) throw lostError(record);
      // Moves, renames and sets MTU and MAC in one request (the kernel
      // applies the rest of the request in the new namespace), so the host
      // name never shows in the pod. No separate "set down": the kernel
      // closes the device as part of the move, and a down costs an RCU grace
      // period of its own. When the device's ifindex is free in the pod, the
      // request pins it (IFLA_NEW_IFINDEX): the pod-side index is then known
      // ahead, and the rest of the attach rides in the same batch.
      const pin = podIndexes !== undefined && !podIndexes.has(device.index);
      const update = { netns: plan.netns, ...linkSettings(plan), ...(upWithMove(plan) && { up: true }), ...(pin && { newIfindex: device.index }) };
      const moveOp: Op = { op: "setLink", index: device.index, device: device.name, update };
      if (pin) {
        move.push({ plan, step: "move", netns: undefined, ops: [moveOp] });
        inPod = { ...device, ...linkSettings(plan), up: upWithMove(plan) };
      } else {
        this.#step("move", plan);
        await this.#call(plan, "move", undefined, [moveOp] as const);
        const [moved] = await this.#call(plan, "move", plan.netns, [{ op: "getLink", key: { name: plan.podName } }] as const);
        if (moved === null) fail("ENGINE_VERIFY", plan, "move", `device ${device.name} is not in pod ${plan.netns} as ${plan.podName} after the move`);
        inPod = moved;
      }
    }
    const index = inPod.index;
    const device = plan.podName;
    const configure: Op[] = [];
    const settings = linkSettings(plan);
    if (inPod.name !== settings.name || (settings.mtu !== undefined && inPod.mtu !== settings.mtu) || (settings.mac !== undefined && inPod.mac !== settings.mac)) {
      configure.push({ op: "setLink", index, device, update: settings });
    }
    for (const [key, value] of Object.entries(plan.sysctls)) {
      const sysctl = parseSysctlKey(key, plan.podName);
      if (sysctl !== undefined) configure.push({ op: "writeSysctl", sysctl, value, device });
    }
    for (const spec of podAddresses(plan, index)) configure.push({ op: "addAddress", spec, device });
    // Everything in the pod goes to the kernel in one datagram: a failure
    // anywhere rolls the whole attach back, so an operation that runs after
    // a failed one does no harm.
    const { netns } = plan;
    const pipelined = true;
    return {
      plan,
      index,
      steps: [
        ...move,
        { plan, step: "configure", netns, ops: configure, pipelined },
        { plan, step: "set-up", netns, ops: inPod.up ? [] : [{ op: "setLink", index, device, update: { up: true } }], pipelined },
        { plan, step: "routes", netns, ops: podRoutes(plan, index).map((spec) => ({ op: "addRoute", spec, device })), pipelined },
      ],
      verify: { plan, step: "verify", netns, ops: [{ op: "getLink", key: { index } }, { op: "listAddresses", index }], pipelined },
    };
  }

  /** The device inside the pod, or undefined when it is not there (or the pod is gone). */
  async #locateInPod(record: JournalRecord): Promise<Link | undefined> {
    let links: Link[];
    try {
      [links] = await this.#nl.batch(record.plan.netns, [{ op: "listLinks" }] as const);
    } catch (err) {
      if (err instanceof NetlinkError && err.code === "NETLINK_SYSCALL") return undefined;
      throw stepError(record.plan, "locate", err);
    }
    return findRecordedDevice(links, record.host, record.plan);
  }

  async #detachOne(record: JournalRecord): Promise<DetachOutcome> {
    const { plan, host } = record;
    const inPod = await this.#locateInPod(record);
    if (inPod !== undefined) {
      if (plan.rdma?.mode === "exclusive") {
        this.#step("rdma-return", plan);
        await this.#moveRdma(plan, HOST_NETNS, "rdma-return");
      }
      if (await this.#moveOut(record, inPod)) {
        this.#step("forget", plan);
        return "restored";
      }
    }
    const [hostLinks] = await this.#call(plan, "restore-link", undefined, [{ op: "listLinks" }] as const);
    const onHost = findRecordedDevice(hostLinks, host, plan);
    // A virtual device dies with its namespace: nothing is left to restore.
    if (onHost !== undefined) await this.#runSteps(restoreSteps(plan, host, onHost));
    // The caller deletes the record; a crash before that repeats the
    // (idempotent) restore on recovery.
    this.#step("forget", plan);
    return onHost === undefined ? "gone" : "restored";
  }

  /**
   * Moves the device out of its pod under its host name and at its host
   * ifindex (IFLA_NEW_IFINDEX), and restores the rest of its host state in
   * the same batch: pinned, the device is known on the host without
   * dumping the host's links, a list that grows with the node's pods. The
   * restore rides behind the move only because a failed move stops the
   * batch: the host-side requests never reach whatever holds that index
   * then. False when the host has given the recorded ifindex to another
   * device (EBUSY): the device is then moved without the pin, and the
   * caller finds it on the host.
   */
  async #moveOut(record: JournalRecord, inPod: Link): Promise<boolean> {
    const { plan, host } = record;
    const move = (pin: boolean): Op => ({
      op: "setLink", index: inPod.index, device: inPod.name, update: { netns: HOST_NETNS, name: host.name, ...(pin && { newIfindex: host.ifindex }) },
    });
    // The kernel closes the device as it moves it.
    const moved = { index: host.ifindex, name: host.name, up: false };
    try {
      await this.#runSteps([{ plan, step: "move-out", netns: plan.netns, ops: [move(true)] }, ...restoreSteps(plan, host, moved)]);
      return true;
    } catch (err) {
      if (!(err instanceof EngineError && err.step === "move-out" && err.cause instanceof NetlinkError && err.cause.errnoName === "EBUSY")) throw err;
    }
    await this.#call(plan, "move-out", plan.netns, [move(false)] as const);
    return false;
  }

  /**
   * Restores a device whose attach failed; what went wrong when that fails
   * too. Its record then stays with intent "detach" for recovery to finish.
   */
  async #rollBack(record: JournalRecord): Promise<unknown> {
    try {
      await this.#journal.put(record.plan.key, { ...record, intent: "detach" });
      await this.#detachOne({ ...record, intent: "detach" });
      await this.#journal.delete(record.plan.key);
      return undefined;
    } catch (err) {
      return stepError(record.plan, "roll-back", err);
    }
  }

  async #moveRdma(plan: AttachmentPlan, netns: string, step: Step): Promise<void> {
    const name = plan.rdma?.device;
    if (name === undefined) return;
    try {
      const dev = (await this.#rdma.rdmaListDevices()).find((d) => d.name === name);
      if (dev === undefined) fail("ENGINE_DEVICE_MISSING", plan, step, `RDMA device ${name} is not visible in the agent's namespace`);
      await this.#rdma.rdmaSetNetns(dev.index, name, netns);
    } catch (err) {
      throw stepError(plan, step, err);
    }
  }

  /**
   * Runs consecutive steps, each in its namespace and of its device, as one
   * worker batch: one round trip instead of one per step. The test hook is
   * still asked before each step; if it stops the operation at a step, only
   * the operations of the steps before it run, exactly as if the process had
   * died there. A kernel error is reported against the device and the step
   * that own the failed operation.
   */
  async #runSteps(steps: readonly PlannedStep[]): Promise<unknown[]> {
    const ops: PlacedOp[] = [];
    const owners: PlannedStep[] = [];
    let stopped: Error | undefined;
    for (const owner of steps) {
      try {
        this.#step(owner.step, owner.plan);
      } catch (err) {
        stopped = err instanceof Error ? err : new Error(String(err));
        break;
      }
      for (const op of owner.ops) {
        ops.push({ netns: owner.netns, op, ...(owner.pipelined === true && { pipelined: true }) });
        owners.push(owner);
      }
    }
    let results: unknown[] = [];
    if (ops.length > 0) {
      try {
        results = await this.#nl.batchAcross(ops);
      } catch (err) {
        const owner = (err instanceof NetlinkError && err.opIndex !== undefined ? owners[err.opIndex] : undefined) ?? owners[0];
        throw owner === undefined ? err : stepError(owner.plan, owner.step, err);
      }
    }
    if (stopped !== undefined) throw stopped;
    return results;
  }

  #step(step: Step, plan: AttachmentPlan): void {
    this.#beforeStep(step, plan.key);
  }

  async #call<const T extends readonly Op[]>(plan: AttachmentPlan, step: string, netns: string | undefined, ops: T) {
    try {
      return await this.#nl.batch(netns, ops);
    } catch (err) {
      throw stepError(plan, step, err);
    }
  }
}

function parsePlan(input: AttachmentPlanInput): AttachmentPlan {
  const parsed = attachmentPlanSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // A bad record key is reported by zod as "invalid key" with the reason nested.
    const reason = issue?.code === "invalid_key" ? issue.issues[0]?.message : issue?.message;
    const where = { attachment: input.key, device: typeof input.podName === "string" ? input.podName : "?", step: "validate" };
    throw new EngineError("ENGINE_PLAN", where, `${issue?.path.join(".") ?? ""}: ${reason ?? parsed.error.message}`);
  }
  return parsed.data;
}

/** The host lookup for a plan: the device's state when the plan names it, else a dump to find it in. */
function hostLookup(plan: AttachmentPlan): Op {
  const { name, ifindex } = plan.device;
  if (ifindex !== undefined) return { op: "linkState", key: { index: ifindex } };
  if (name !== undefined) return { op: "linkState", key: { name } };
  return { op: "listLinks" };
}

function fail(code: EngineErrorCode, plan: AttachmentPlan, step: string, message: string): never {
  throw new EngineError(code, { attachment: plan.key, device: describeDevice(plan.device), step }, message);
}

function stepError(plan: AttachmentPlan, step: string, err: unknown): unknown {
  if (err instanceof EngineError || err instanceof InjectedCrash) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new EngineError("ENGINE_STEP_FAILED", { attachment: plan.key, device: describeDevice(plan.device), step }, message, { cause: err });
}

/**
 * Whether the move request itself brings the device up (the kernel applies
 * the flags last, in the pod's namespace), which saves a request. Not when
 * the plan sets sysctls: those must be in place before the device is up.
 */
function upWithMove(plan: AttachmentPlan): boolean {
  return Object.keys(plan.sysctls).length === 0;
}

/**
 * The steps that put name, MTU, MAC, addresses, up state and routes back as
 * recorded on `link`, the device on the host. They go to the kernel in one
 * datagram: each request moves the device toward its recorded state and
 * may be repeated, so one that runs after a failed one does no harm; the
 * failure is still reported, and the journal keeps the record for
 * recovery to finish.
 */
function restoreSteps(plan: AttachmentPlan, host: HostState, link: Pick<Link, "index" | "name" | "up">): PlannedStep[] {
  const { index } = link;
  const device = host.name;
  const restoreLink: Op[] = [];
  // A rename needs the device down; after a move it already is.
  if (link.up) restoreLink.push({ op: "setLink", index, device: link.name, update: { up: false } });
  restoreLink.push({ op: "setLink", index, device: link.name, update: { name: host.name, mtu: host.mtu, ...(host.mac !== undefined && { mac: host.mac }) } });
  const netns = undefined;
  const pipelined = true;
  return [
    { plan, step: "restore-link", netns, ops: restoreLink, pipelined },
    { plan, step: "restore-addresses", netns, ops: host.addresses.map((a) => ({ op: "addAddress", spec: addressSpecFor(a, index), device })), pipelined },
    { plan, step: "restore-up", netns, ops: host.up ? [{ op: "setLink", index, device, update: { up: true } }] : [], pipelined },
    { plan, step: "restore-routes", netns, ops: host.routes.map((r) => ({ op: "addRoute", spec: routeSpecFor(r, index), device })), pipelined },
  ];
}

/** The link attributes the plan sets in the pod. */
function linkSettings(plan: AttachmentPlan): { name: string; mtu?: number; mac?: string } {
  return { name: plan.podName, ...(plan.mtu !== undefined && { mtu: plan.mtu }), ...(plan.mac !== undefined && { mac: plan.mac }) };
}

function podAddresses(plan: AttachmentPlan, index: number): AddressSpec[] {
  return plan.addresses.map((text) => {
    const { address, prefixLength, family } = cidrParts(text);
    // No DAD in the pod: the address must be usable (and a valid route
    // source) the moment the pod starts.
    return { index, address, prefixLength, family, ...(family === 6 && { flags: IFA_F_NODAD }) };
  });
}

const SCOPES = { universe: RT_SCOPE.UNIVERSE, link: RT_SCOPE.LINK, host: RT_SCOPE.HOST } as const;

/** Link-scope routes first, so a gateway route can rely on them. */
function podRoutes(plan: AttachmentPlan, index: number): RouteSpec[] {
  const specs = plan.routes.map((r): RouteSpec => {
    const { address, prefixLength, family } = cidrParts(r.destination);
    return {
      family,
      dstLength: prefixLength,
      oif: index,
      ...(prefixLength > 0 && { dst: networkOf(address, prefixLength) }),
      ...(r.gateway !== undefined && { gateway: r.gateway }),
      ...(r.source !== undefined && { prefsrc: r.source }),
      ...(r.scope !== undefined && { scope: SCOPES[r.scope] }),
      ...(r.table !== undefined && { table: r.table }),
      ...(r.metric !== undefined && { priority: r.metric }),
    };
  });
  return specs.sort((a, b) => (a.gateway === undefined ? 0 : 1) - (b.gateway === undefined ? 0 : 1));
}

/** The attach result of `work`, once its read-back (`readBack`: the verify step's results) matches the plan. */
function verified(work: AttachWork, readBack: readonly unknown[]): AttachResult {
  const { plan, index } = work;
  const [link, addresses] = readBack as [Link | null, Address[]];
  verifyPod(plan, link, addresses);
  return { key: plan.key, podName: plan.podName, ifindex: index, mac: link?.mac, addresses: plan.addresses };
}

function verifyPod(plan: AttachmentPlan, link: Link | null, addresses: readonly Address[]): void {
  const problems: string[] = [];
  if (link === null) problems.push("the interface is gone");
  else {
    if (link.name !== plan.podName) problems.push(`name is ${link.name}`);
    if (plan.mtu !== undefined && link.mtu !== plan.mtu) problems.push(`MTU is ${link.mtu}, want ${plan.mtu}`);
    if (plan.mac !== undefined && link.mac !== plan.mac) problems.push(`MAC is ${link.mac ?? "none"}, want ${plan.mac}`);
    if (!link.up) problems.push("link is down");
    for (const text of plan.addresses) {
      const want = cidrParts(text);
      if (!addresses.some((a) => a.index === link.index && a.address === want.address && a.prefixLength === want.prefixLength)) {
        problems.push(`address ${text} is missing`);
      }
    }
  }
  if (problems.length > 0) fail("ENGINE_VERIFY", plan, "verify", `pod interface ${plan.podName}: ${problems.join("; ")}`);
}
