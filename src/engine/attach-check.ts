/**
 * The first half of an attach (AttachEngine.begin): every plan validated,
 * checked against the host (the device is there) and the pod (its names are
 * free), and journaled with the device's host state before anything moves.
 * Every error a caller could act on up front is thrown here.
 */
import { NetlinkError, type Link, type LinkState, type Op, type PlacedOp } from "../netlink/index.ts";
import type { Collection } from "../store/index.ts";
import { EngineError, fail, stepError } from "./errors.ts";
import { captureHostState, findPlannedDevice } from "./host-state.ts";
import type { JournalRecord } from "./journal.ts";
import { attachmentPlanSchema, describeDevice, type AttachmentPlan, type AttachmentPlanInput } from "./plan.ts";
import type { StepRunner } from "./step-runner.ts";

/** A journaled attachment, with the host device and the pod's ifindexes when it is a fresh one. */
export interface PreparedAttachment {
  record: JournalRecord;
  onHost?: Link;
  podIndexes?: ReadonlySet<number>;
  /** For a fresh child: the ifindex it is created at, free in the pod and taken by nothing else of this attach. */
  childIndex?: number;
}

/** Validates a plan at the engine's boundary (it may come from disk); ENGINE_PLAN names the field. */
export function parsePlan(input: AttachmentPlanInput): AttachmentPlan {
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

/** Checks every plan against the host and the pod, then journals the host state. */
export async function checkAttach(
  runner: StepRunner,
  journal: Collection<JournalRecord>,
  plans: readonly AttachmentPlan[],
  knownPodLinks: readonly Link[] | undefined,
): Promise<PreparedAttachment[]> {
  const netns = plans[0]?.netns;
  const first = plans[0];
  if (netns === undefined || first === undefined) return [];
  const other = plans.find((p) => p.netns !== netns);
  if (other !== undefined) fail("ENGINE_PLAN", other, "check-names", `all plans of one attach must target one pod, not both ${netns} and ${other.netns}`);
  // Held from here on (namespace-pins.ts), so that every request of the
  // attach reaches the pod through one descriptor: opening a namespace and a
  // socket in it costs more than most requests. Let go if the check fails.
  const newlyHeld = plans.filter((p) => !runner.pins.holds(p.key));
  for (const plan of newlyHeld) runner.pins.pin(plan.key, plan.netns);
  try {
    return await checkHeld(runner, journal, plans, knownPodLinks);
  } catch (err) {
    for (const plan of newlyHeld) runner.pins.unpin(plan.key);
    throw err;
  }
}

async function checkHeld(
  runner: StepRunner,
  journal: Collection<JournalRecord>,
  plans: readonly AttachmentPlan[],
  knownPodLinks: readonly Link[] | undefined,
): Promise<PreparedAttachment[]> {
  const first = plans[0];
  if (first === undefined) return [];
  const netns = runner.pins.resolve(first.netns);
  // One round trip lists the pod's links (unless the caller did) and
  // looks up every planned device on the host, while the journal is read.
  const podLookup: PlacedOp[] = knownPodLinks === undefined ? [{ netns, op: { op: "listLinks" } }] : [];
  const lookups = [...podLookup, ...plans.map((p) => ({ netns: undefined, op: hostLookup(p) }))];
  const [answers, existingRecords] = await Promise.all([
    runner.netlink.batchAcross(lookups).catch((err: unknown) => {
      const i = err instanceof NetlinkError && err.opIndex !== undefined ? err.opIndex - podLookup.length : -1;
      const at = i >= 0 ? plans[i] : undefined;
      throw stepError(at ?? first, at === undefined ? "check-names" : "resolve", err);
    }),
    Promise.all(plans.map((p) => journal.get(p.key))),
  ]);
  const podLinks = knownPodLinks ?? (answers[0] as Link[]);
  const found = answers.slice(podLookup.length) as (LinkState | Link | Link[] | null)[];
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
    const { link, addresses, routes } = await resolveHostDevice(runner, plan, found[i] ?? null);
    const taken = podLinks.find((l) => l.name === plan.podName);
    if (taken !== undefined) {
      fail("ENGINE_NAME_COLLISION", plan, "check-names", `pod ${plan.netns} already has an interface named ${plan.podName} (ifindex ${taken.index}); device ${link.name} cannot take that name`);
    }
    records.push({ record: { plan, intent: "attach", host: captureHostState(link, addresses, routes) }, onHost: link, podIndexes });
  }
  assignChildIndexes(records, podIndexes);
  await Promise.all(records.map(({ record }) => journal.put(record.plan.key, record)));
  return records;
}

/**
 * Gives each fresh child an ifindex above every index of the pod and of the
 * devices this attach moves in at their host index, so its creation can be
 * pinned and ride in the attach's batch like a move. Not when anything of
 * the attach gets into the pod unpinned: a device whose host index is taken
 * there, or an attachment journaled before (placed from wherever it is).
 * The kernel picks those indexes, which could be any free one, so children
 * are created unpinned too.
 */
function assignChildIndexes(records: PreparedAttachment[], podIndexes: ReadonlySet<number>): void {
  const hostIndexes: number[] = [];
  for (const { record, onHost } of records) {
    if (onHost === undefined || (record.plan.child === undefined && podIndexes.has(onHost.index))) return;
    if (record.plan.child === undefined) hostIndexes.push(onHost.index);
  }
  let next = Math.max(0, ...podIndexes, ...hostIndexes) + 1;
  for (const record of records) if (record.record.plan.child !== undefined) record.childIndex = next++;
}

/**
 * The host link the plan names, with its addresses and routes, from the
 * answer to hostLookup(plan): the link's state when the plan gives an
 * ifindex or a name, else a dump of links to find it in first. A child's
 * parent stays as it is, so only the link itself is read, which identifies it.
 */
async function resolveHostDevice(runner: StepRunner, plan: AttachmentPlan, lookedUp: LinkState | Link | Link[] | null): Promise<LinkState> {
  let state: LinkState | null = null;
  if (Array.isArray(lookedUp)) {
    const found = findPlannedDevice(lookedUp, plan.device);
    if (found !== undefined && plan.child !== undefined) state = { link: found, addresses: [], routes: [] };
    else if (found !== undefined) [state] = await runner.call(plan, "resolve", undefined, [{ op: "linkState", key: { index: found.index } }] as const);
  } else if (lookedUp !== null && !("link" in lookedUp)) {
    state = { link: lookedUp, addresses: [], routes: [] };
  } else {
    state = lookedUp;
  }
  if (state === null || findPlannedDevice([state.link], plan.device) === undefined) {
    fail("ENGINE_DEVICE_MISSING", plan, "resolve", `no host interface matches ${JSON.stringify(plan.device)}`);
  }
  return state;
}

/** The host lookup for a plan: the device's state (a child's parent: the link alone) when the plan names it, else a dump to find it in. */
function hostLookup(plan: AttachmentPlan): Op {
  const { name, ifindex } = plan.device;
  const key = ifindex !== undefined ? { index: ifindex } : name !== undefined ? { name } : undefined;
  if (key === undefined) return { op: "listLinks" };
  return plan.child === undefined ? { op: "linkState", key } : { op: "getLink", key };
}
