/**
 * The scheduling priority of the calling thread. Linux keeps a nice value
 * per thread, and setpriority(PRIO_PROCESS, <thread id>) changes that
 * thread's alone: the agent raises its engine's thread (engine/thread.ts),
 * whose attaches are on pods' start-up path, and leaves the rest be.
 */
import { lastErrno, libc } from "./libc.ts";

const PRIO_PROCESS = 0;
const setpriority = libc.func("int setpriority(int which, uint32_t who, int prio)");
const gettid = libc.func("int gettid()");

/** Sets this thread's nice value (-20 to 19); the errno when the kernel refuses (EACCES or EPERM without CAP_SYS_NICE). */
export function setThreadNice(nice: number): number | undefined {
  if (!Number.isInteger(nice) || nice < -20 || nice > 19) throw new RangeError(`Cannot set thread priority: nice must be an integer from -20 to 19, got ${String(nice)}`);
  return (setpriority(PRIO_PROCESS, gettid() as number, nice) as number) === 0 ? undefined : lastErrno();
}
