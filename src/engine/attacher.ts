/**
 * What the agent asks of an attach engine, wherever it runs (AttachEngine
 * on the engine's thread, EngineThread from the agent's), and the options,
 * steps and results that cross that boundary. Types only, so both sides and
 * the thread protocol share them without loading the engine.
 */
import type { BatchRunner, Link } from "../netlink/index.ts";
import type { StateStore } from "../store/index.ts";
import type { AttachmentPlanInput } from "./plan.ts";

/** The RDMA operations the engine needs; by default they run as netlink batches. */
export interface RdmaOps {
  rdmaListDevices(): Promise<{ index: number; name: string }[]>;
  rdmaSetNetns(index: number, device: string, netns: string): Promise<null>;
}

export type AttachStep = "move" | "create" | "configure" | "set-up" | "routes" | "rdma" | "verify";
export type DetachStep = "rdma-return" | "move-out" | "delete-child" | "restore-link" | "restore-addresses" | "restore-up" | "restore-routes" | "forget";
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
  /** The attachments meant to be in their pods (intent "attach"), among `keys` when given. */
  attached(keys?: readonly string[]): Promise<string[]>;
}

/** What device health asks of an engine (AttachEngine, EngineThread). */
export interface PodLinkSource {
  /**
   * Each settled attachment's device as its pod sees it now (carrier included), by key; null
   * where the pod's namespace has no such device. An attachment whose namespace cannot be
   * read, or that is being attached or detached, is left out.
   */
  podLinks(): Promise<Map<string, Link | null>>;
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

/**
 * What recovery did with one journaled attachment:
 * - attached: in its live pod, configured as planned;
 * - restored: back on the host as recorded (its pod is gone);
 * - gone: its pod is gone and so is the device (a virtual device dies with its namespace);
 * - lost: its pod lives, but the device is in neither the pod nor the host (it vanished);
 * - unplaced: the recorded pod namespace is gone and the device is not on the host: it
 *   died with that namespace, or its pod runs in another one (see retarget); kept;
 * - failed: a step failed; the record stays as it was, and the next recovery tries again.
 */
export type RecoveryOutcome = "attached" | "restored" | "gone" | "lost" | "unplaced" | "failed";

export interface RecoveryResult {
  outcome: RecoveryOutcome;
  /** For "lost", "unplaced" and "failed": what happened, naming the device (and, from a step, the attachment and the step). */
  error?: string;
  /** For "attached": the device in the pod. */
  attached?: AttachResult;
}
