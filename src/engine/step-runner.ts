/**
 * Runs the engine's kernel work: planned steps as netlink worker batches,
 * single calls, the pod-side lookup of a journaled device and the RDMA
 * device's move. The test hook is asked before each step, and a kernel error
 * is reported against the device and the step that own it. Attach, restore
 * and recovery all go through one runner, so none of them talks to netlink
 * another way, and a pod namespace the runner holds (`pins`) is reached
 * through its descriptor wherever a step names it.
 */
import { NetlinkError, type BatchRunner, type Link, type Op, type PlacedOp } from "../netlink/index.ts";
import type { RdmaOps, Step } from "./attacher.ts";
import { fail, stepError } from "./errors.ts";
import { findInPod } from "./host-state.ts";
import type { JournalRecord } from "./journal.ts";
import { NamespacePins } from "./namespace-pins.ts";
import type { AttachmentPlan } from "./plan.ts";

/** The operations of one step of one device. */
export interface PlannedStep {
  plan: AttachmentPlan;
  step: Step;
  /** Where the step's operations run; undefined: the agent's namespace. */
  netns: string | undefined;
  ops: Op[];
  /** Its operations may share a datagram with the ones before them (see PlacedOp.pipelined). */
  pipelined?: boolean;
}

export class StepRunner {
  readonly netlink: BatchRunner;
  readonly pins = new NamespacePins();
  readonly #rdma: RdmaOps;
  readonly #beforeStep: (step: Step, key: string) => void;

  /** `rdma` defaults to batches on `netlink`; `beforeStep` is the test hook (EngineOptions). */
  constructor(netlink: BatchRunner, options: { rdma?: RdmaOps | undefined; beforeStep?: ((step: Step, key: string) => void) | undefined } = {}) {
    this.netlink = netlink;
    this.#rdma = options.rdma ?? {
      rdmaListDevices: async () => (await netlink.batch(undefined, [{ op: "rdmaListDevices" }] as const))[0],
      rdmaSetNetns: async (index, device, netns) => (await netlink.batch(undefined, [{ op: "rdmaSetNetns", index, device, netns }] as const))[0],
    };
    this.#beforeStep = options.beforeStep ?? (() => undefined);
  }

  /**
   * Runs consecutive steps, each in its namespace and of its device, as one
   * worker batch: one round trip instead of one per step. The test hook is
   * still asked before each step; if it stops the operation at a step, only
   * the operations of the steps before it run, exactly as if the process had
   * died there. A kernel error is reported against the device and the step
   * that own the failed operation.
   */
  async runSteps(steps: readonly PlannedStep[]): Promise<unknown[]> {
    const ops: PlacedOp[] = [];
    const owners: PlannedStep[] = [];
    let stopped: Error | undefined;
    for (const owner of steps) {
      try {
        this.step(owner.step, owner.plan);
      } catch (err) {
        stopped = err instanceof Error ? err : new Error(String(err));
        break;
      }
      for (const op of owner.ops) {
        ops.push({ netns: this.#resolve(owner.netns), op, ...(owner.pipelined === true && { pipelined: true }) });
        owners.push(owner);
      }
    }
    let results: unknown[] = [];
    if (ops.length > 0) {
      try {
        results = await this.netlink.batchAcross(ops);
      } catch (err) {
        const owner = (err instanceof NetlinkError && err.opIndex !== undefined ? owners[err.opIndex] : undefined) ?? owners[0];
        throw owner === undefined ? err : stepError(owner.plan, owner.step, err);
      }
    }
    if (stopped !== undefined) throw stopped;
    return results;
  }

  /** Asks the test hook before `step` of `plan`'s device; it may throw InjectedCrash. */
  step(step: Step, plan: AttachmentPlan): void {
    this.#beforeStep(step, plan.key);
  }

  /** One batch of `ops` in `netns`, its failure reported against `plan`'s device and `step`. */
  async call<const T extends readonly Op[]>(plan: AttachmentPlan, step: string, netns: string | undefined, ops: T) {
    try {
      return await this.netlink.batch(this.#resolve(netns), ops);
    } catch (err) {
      throw stepError(plan, step, err);
    }
  }

  /** The device inside the pod, or undefined when it is not there (or the pod is gone). */
  async locateInPod(record: JournalRecord): Promise<Link | undefined> {
    let links: Link[];
    try {
      [links] = await this.netlink.batch(this.pins.resolve(record.plan.netns), [{ op: "listLinks" }] as const);
    } catch (err) {
      if (err instanceof NetlinkError && err.code === "NETLINK_SYSCALL") return undefined;
      throw stepError(record.plan, "locate", err);
    }
    return findInPod(links, record);
  }

  /** Moves `plan`'s RDMA device (exclusive mode) into `netns`; nothing when the plan has none. */
  async moveRdma(plan: AttachmentPlan, netns: string, step: Step): Promise<void> {
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

  #resolve(netns: string | undefined): string | undefined {
    return netns === undefined ? undefined : this.pins.resolve(netns);
  }
}
