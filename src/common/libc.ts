/**
 * The C library, loaded once through koffi: the one place the agent loads
 * native code. Each caller declares the few functions it needs next to the
 * code that uses them (netlink sockets, file locks).
 */
import koffi from "koffi";

export const libc = koffi.load("libc.so.6");

/** errno of the last libc call on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}
