/**
 * The second half of an attach: the kernel work that puts one device in its
 * pod (the move, which renames it and sets MTU and MAC on the way), then
 * configures it there (sysctls, addresses, up, routes) and reads it back.
 * A fresh attach, a repeated one and recovery all come through
 * placeInPod, which starts from wherever the device is.
 */
import { cidrParts, IFA_F_NODAD, networkOf, RT_SCOPE, type Address, type AddressSpec, type Link, type NewLinkSpec, type Op, type RouteSpec } from "../netlink/index.ts";
import type { PreparedAttachment } from "./attach-check.ts";
import type { AttachResult } from "./attacher.ts";
import { fail } from "./errors.ts";
import { findRecordedDevice } from "./host-state.ts";
import { parseSysctlKey, type AttachmentPlan, type ChildInterface } from "./plan.ts";
import { lostError } from "./recovery.ts";
import type { PlannedStep, StepRunner } from "./step-runner.ts";

/** What attaching one device still takes once it is (or is about to be) in its pod. */
export interface AttachWork {
  plan: AttachmentPlan;
  /** The device's ifindex inside the pod. */
  index: number;
  /** The move (when it is still to be made), configuration, up, routes. */
  steps: PlannedStep[];
  /** Reads the device and its addresses back. */
  verify: PlannedStep;
}

/** Runs the attach steps of one device from wherever it is (see placeInPod). */
export async function attachOne(runner: StepRunner, attachment: PreparedAttachment): Promise<AttachResult> {
  const work = await placeInPod(runner, attachment);
  const { plan } = work;
  if (plan.rdma?.mode === "exclusive") {
    await runner.runSteps(work.steps);
    runner.step("rdma", plan);
    await runner.moveRdma(plan, plan.netns, "rdma");
    return verified(work, await runner.runSteps([work.verify]));
  }
  return verified(work, (await runner.runSteps([...work.steps, work.verify])).slice(-work.verify.ops.length));
}

/**
 * The kernel work that attaches one device, from wherever it is: with
 * `onHost`, the device the caller just found on the host (a fresh attach),
 * and the ifindexes in use in the pod; otherwise (recovery, a repeated
 * attach) the device is looked for in the pod first. The move (or a
 * child's creation) is among the returned steps when its pod-side ifindex
 * can be pinned; otherwise it is made here, as it must be before anything
 * in the pod can name the device.
 */
export async function placeInPod(runner: StepRunner, attachment: PreparedAttachment): Promise<AttachWork> {
  const { record, onHost } = attachment;
  const { plan, host } = record;
  // Held from before the move until the device is back on the host (namespace-pins.ts).
  runner.pins.pin(plan.key, plan.netns);
  let inPod = onHost === undefined ? await runner.locateInPod(record) : undefined;
  const place: PlannedStep[] = [];
  if (inPod === undefined) {
    let device = onHost;
    if (device === undefined) {
      const [hostLinks] = await runner.call(plan, "move", undefined, [{ op: "listLinks" }] as const);
      device = findRecordedDevice(hostLinks, host, plan);
    }
    if (device === undefined) throw lostError(record);
    // Into the pod through the held descriptor, which the steps that follow use too.
    const target = runner.pins.resolve(plan.netns);
    const placement = plan.child === undefined ? moveInto(plan, target, device, attachment.podIndexes) : createChild(plan, target, plan.child, device, attachment.childIndex);
    if (placement.pinned !== undefined) {
      place.push({ plan, step: placement.step, netns: undefined, ops: [placement.op] });
      inPod = placement.pinned;
    } else {
      runner.step(placement.step, plan);
      await runner.call(plan, placement.step, undefined, [placement.op] as const);
      const [placed] = await runner.call(plan, placement.step, plan.netns, [{ op: "getLink", key: { name: plan.podName } }] as const);
      if (placed === null) fail("ENGINE_VERIFY", plan, placement.step, `${plan.podName} is not in pod ${plan.netns} after ${placement.step === "move" ? `moving ${device.name}` : `creating it on ${device.name}`}`);
      inPod = placed;
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
      ...place,
      { plan, step: "configure", netns, ops: configure, pipelined },
      { plan, step: "set-up", netns, ops: inPod.up ? [] : [{ op: "setLink", index, device, update: { up: true } }], pipelined },
      { plan, step: "routes", netns, ops: podRoutes(plan, index).map((spec) => ({ op: "addRoute", spec, device })), pipelined },
    ],
    verify: { plan, step: "verify", netns, ops: [{ op: "getLink", key: { index } }, { op: "listAddresses", index }], pipelined },
  };
}

/** How a device gets into its pod: one request, and the device as it is there when that request pins its ifindex. */
interface Placement {
  step: "move" | "create";
  op: Op;
  pinned?: Link;
}

/**
 * Moves, renames and sets MTU and MAC in one request (the kernel applies
 * the rest of the request in the new namespace), so the host name never
 * shows in the pod. No separate "set down": the kernel closes the device
 * as part of the move, and a down costs an RCU grace period of its own.
 * When the device's ifindex is free in the pod, the request pins it
 * (IFLA_NEW_IFINDEX): the pod-side index is then known ahead, and the rest
 * of the attach rides in the same batch. `netns` is the pod's namespace as
 * the pins reach it.
 */
function moveInto(plan: AttachmentPlan, netns: string, device: Link, podIndexes: ReadonlySet<number> | undefined): Placement {
  const pin = podIndexes !== undefined && !podIndexes.has(device.index);
  const update = { netns, ...linkSettings(plan), ...(upWithMove(plan) && { up: true }), ...(pin && { newIfindex: device.index }) };
  const op: Op = { op: "setLink", index: device.index, device: device.name, update };
  return { step: "move", op, ...(pin && { pinned: { ...device, ...linkSettings(plan), up: upWithMove(plan) } }) };
}

/**
 * Creates the child on `parent` straight in the pod, named, with its MTU,
 * MAC and (without sysctls to set first) up in the same request, at
 * `index` when the check chose one that is free there. `netns` is the
 * pod's namespace as the pins reach it.
 */
function createChild(plan: AttachmentPlan, netns: string, child: ChildInterface, parent: Link, index: number | undefined): Placement {
  const { name, mtu, mac } = linkSettings(plan);
  const up = upWithMove(plan);
  const spec: NewLinkSpec = { ...child, name, parentIndex: parent.index, ...(mtu !== undefined && { mtu }), ...(mac !== undefined && { mac }), up, ...(index !== undefined && { index }) };
  const op: Op = { op: "createLink", spec, into: netns };
  const pinned: Link | undefined = index === undefined ? undefined : { index, name, mtu: mtu ?? parent.mtu, up, carrier: false, kind: child.kind, ...(mac !== undefined && { mac }) };
  return { step: "create", op, ...(pinned !== undefined && { pinned }) };
}

/**
 * Whether the move request itself brings the device up (the kernel applies
 * the flags last, in the pod's namespace), which saves a request. Not when
 * the plan sets sysctls: those must be in place before the device is up.
 */
function upWithMove(plan: AttachmentPlan): boolean {
  return Object.keys(plan.sysctls).length === 0;
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
export function verified(work: AttachWork, readBack: readonly unknown[]): AttachResult {
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
