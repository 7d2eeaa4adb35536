/**
 * Restoring a device to the host, for a detach, a rolled-back attach and
 * recovery alike: out of its pod under its host name and ifindex, then its
 * recorded name, MTU, MAC, addresses, up state and routes put back. Every
 * request moves the device toward its recorded state and may be repeated.
 */
import { NetlinkError, type Link, type Op } from "../netlink/index.ts";
import type { DetachOutcome } from "./attacher.ts";
import { EngineError } from "./errors.ts";
import { addressSpecFor, findRecordedDevice, routeSpecFor } from "./host-state.ts";
import type { HostState, JournalRecord } from "./journal.ts";
import type { AttachmentPlan } from "./plan.ts";
import type { PlannedStep, StepRunner } from "./step-runner.ts";

/** The agent's own namespace, as a path the netlink worker can open. */
const HOST_NETNS = "/proc/self/ns/net";

/**
 * Puts one device back on the host as recorded, from its pod or from the
 * host (a restore that stopped half-way); "gone" when it is in neither (a
 * virtual device dies with its namespace). The caller owns the record.
 */
export async function detachOne(runner: StepRunner, record: JournalRecord): Promise<DetachOutcome> {
  const { plan, host } = record;
  const inPod = await runner.locateInPod(record);
  if (plan.child !== undefined) return deleteChild(runner, record, inPod);
  if (inPod !== undefined) {
    if (plan.rdma?.mode === "exclusive") {
      runner.step("rdma-return", plan);
      await runner.moveRdma(plan, HOST_NETNS, "rdma-return");
    }
    if (await moveOut(runner, record, inPod)) {
      runner.step("forget", plan);
      runner.pins.unpin(plan.key);
      return "restored";
    }
  }
  const [hostLinks] = await runner.call(plan, "restore-link", undefined, [{ op: "listLinks" }] as const);
  const onHost = findRecordedDevice(hostLinks, host, plan);
  // A virtual device dies with its namespace: nothing is left to restore.
  if (onHost !== undefined) await runner.runSteps(restoreSteps(plan, host, onHost));
  // The caller deletes the record; a crash before that repeats the
  // (idempotent) restore on recovery.
  runner.step("forget", plan);
  runner.pins.unpin(plan.key);
  return onHost === undefined ? "gone" : "restored";
}

/**
 * A child goes with its pod: deleted there when it is still there (a
 * namespace that is gone took it along). Its parent never left the host and
 * nothing of it changed, so the host is as recorded either way.
 */
async function deleteChild(runner: StepRunner, { plan }: JournalRecord, inPod: Link | undefined): Promise<DetachOutcome> {
  if (inPod !== undefined) {
    runner.step("delete-child", plan);
    try {
      await runner.call(plan, "delete-child", plan.netns, [{ op: "deleteLink", index: inPod.index, device: inPod.name }] as const);
    } catch (err) {
      // Gone meanwhile: its namespace was torn down, or its parent removed.
      if (!(err instanceof EngineError && err.cause instanceof NetlinkError && err.cause.errnoName === "ENODEV")) throw err;
    }
  }
  runner.step("forget", plan);
  runner.pins.unpin(plan.key);
  return "restored";
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
async function moveOut(runner: StepRunner, record: JournalRecord, inPod: Link): Promise<boolean> {
  const { plan, host } = record;
  const move = (pin: boolean): Op => ({
    op: "setLink", index: inPod.index, device: inPod.name, update: { netns: HOST_NETNS, name: host.name, ...(pin && { newIfindex: host.ifindex }) },
  });
  // The kernel closes the device as it moves it.
  const moved = { index: host.ifindex, name: host.name, up: false };
  try {
    await runner.runSteps([{ plan, step: "move-out", netns: plan.netns, ops: [move(true)] }, ...restoreSteps(plan, host, moved)]);
    return true;
  } catch (err) {
    if (!(err instanceof EngineError && err.step === "move-out" && err.cause instanceof NetlinkError && err.cause.errnoName === "EBUSY")) throw err;
  }
  await runner.call(plan, "move-out", plan.netns, [move(false)] as const);
  return false;
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
