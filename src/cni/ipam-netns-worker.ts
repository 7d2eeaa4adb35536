/**
 * A one-shot thread that makes a new, empty network namespace and pins it
 * to a file (ipam-sandbox.ts): unshare(CLONE_NEWNET) moves only the calling
 * thread, so it happens here and never on the agent's main thread, and the
 * bind mount keeps the namespace alive after this thread exits.
 */
import { parentPort, workerData } from "node:worker_threads";
import { lastErrno, libc } from "../common/libc.ts";

/** What the thread reports: done, or the call that failed and its errno. */
export type NetnsWorkerReply = { ok: true } | { ok: false; call: string; errno: number };

const CLONE_NEWNET = 0x40000000;
const MS_BIND = 0x1000;

const unshare = libc.func("int unshare(int flags)") as (flags: number) => number;
const mount = libc.func("int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)") as (
  source: string,
  target: string,
  fstype: null,
  flags: number,
  data: null,
) => number;

const port = parentPort;
if (port === null) throw new Error("cni/ipam-netns-worker.ts must run as a worker thread");
const target = workerData as string;

port.postMessage(pinNewNetns());

function pinNewNetns(): NetnsWorkerReply {
  if (unshare(CLONE_NEWNET) !== 0) return { ok: false, call: "unshare(CLONE_NEWNET)", errno: lastErrno() };
  if (mount("/proc/thread-self/ns/net", target, null, MS_BIND, null) !== 0) return { ok: false, call: "mount(MS_BIND)", errno: lastErrno() };
  return { ok: true };
}
