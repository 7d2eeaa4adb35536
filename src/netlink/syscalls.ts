/**
 * The libc calls netlink needs (common/libc.ts loads the library). This is
 * the only file of netlink/ that calls native code: everything above it
 * works on Uint8Array and numbers.
 *
 * Every call here blocks its thread (a netns move blocks ~20 ms inside the
 * kernel), so only the netlink worker thread and the link-event thread call
 * them; the main thread talks to those through messages (client.ts).
 */
import { lastErrno, libc } from "../common/libc.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVTIMEO = 20;
const SOL_NETLINK = 270;
const CLONE_NEWNET = 0x40000000;
const MSG_TRUNC = 0x20;

const socketFn = libc.func("int socket(int domain, int type, int protocol)");
const bindFn = libc.func("int bind(int fd, const void *addr, uint32_t len)");
const sendFn = libc.func("long send(int fd, const void *buf, size_t len, int flags)");
const recvFn = libc.func("long recv(int fd, _Out_ void *buf, size_t len, int flags)");
const setsockoptFn = libc.func("int setsockopt(int fd, int level, int name, const void *value, uint32_t len)");
const closeFn = libc.func("int close(int fd)");
const setnsFn = libc.func("int setns(int fd, int nstype)");
const strerrorFn = libc.func("const char *strerror(int errnum)");

/** A failed system call: `errno` and the libc name of the call. */
export class SyscallError extends Error {
  readonly errno: number;
  readonly call: string;

  constructor(call: string, errno: number) {
    super(`${call}: ${errnoName(errno)} (${strerrorFn(errno) as string})`);
    this.errno = errno;
    this.call = call;
    this.name = "SyscallError";
  }
}

function check(call: string, result: number | bigint): number {
  const n = Number(result);
  if (n < 0) throw new SyscallError(call, lastErrno());
  return n;
}

/** Opens a netlink socket of `protocol` in the calling thread's network namespace. */
export function netlinkSocket(protocol: number): number {
  return check("socket(AF_NETLINK)", socketFn(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol) as number);
}

/** Binds to a kernel-assigned port id and the given multicast groups. */
export function bindNetlink(fd: number, groups: number): void {
  const addr = new Uint8Array(12);
  const view = new DataView(addr.buffer);
  view.setUint16(0, AF_NETLINK, true);
  view.setUint32(8, groups >>> 0, true);
  check("bind(AF_NETLINK)", bindFn(fd, addr, addr.length) as number);
}

export function setNetlinkOption(fd: number, option: number, value: number): void {
  setIntOption(fd, SOL_NETLINK, option, value, "setsockopt(SOL_NETLINK)");
}

export function setReceiveBuffer(fd: number, bytes: number): void {
  setIntOption(fd, SOL_SOCKET, SO_RCVBUF, bytes, "setsockopt(SO_RCVBUF)");
}

/** Makes `recv` fail with EAGAIN after `ms` instead of blocking forever. */
export function setReceiveTimeout(fd: number, ms: number): void {
  const tv = new Uint8Array(16);
  const view = new DataView(tv.buffer);
  view.setBigInt64(0, BigInt(Math.floor(ms / 1000)), true);
  view.setBigInt64(8, BigInt((ms % 1000) * 1000), true);
  check("setsockopt(SO_RCVTIMEO)", setsockoptFn(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length) as number);
}

function setIntOption(fd: number, level: number, option: number, value: number, call: string): void {
  const buf = new Uint8Array(4);
  new DataView(buf.buffer).setInt32(0, value, true);
  check(call, setsockoptFn(fd, level, option, buf, 4) as number);
}

export function send(fd: number, data: Uint8Array): void {
  const sent = check("send(netlink)", sendFn(fd, data, data.length, 0) as number);
  if (sent !== data.length) throw new SyscallError("send(netlink) short write", 5 /* EIO */);
}

/**
 * Receives one datagram into `buf`; returns its full length, which exceeds
 * `buf.length` when it was truncated (MSG_TRUNC), so callers can tell.
 */
export function receive(fd: number, buf: Uint8Array): number {
  return check("recv(netlink)", recvFn(fd, buf, buf.length, MSG_TRUNC) as number);
}

export function closeFd(fd: number): void {
  closeFn(fd);
}

/** Moves the calling thread (only) into the network namespace behind `fd`. */
export function enterNetworkNamespace(fd: number): void {
  check("setns(CLONE_NEWNET)", setnsFn(fd, CLONE_NEWNET) as number);
}

const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 9: "EBADF",
  11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 16: "EBUSY", 17: "EEXIST", 19: "ENODEV", 22: "EINVAL",
  24: "EMFILE", 28: "ENOSPC", 34: "ERANGE", 71: "EPROTO", 90: "EMSGSIZE", 93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP", 97: "EAFNOSUPPORT", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 100: "ENETDOWN",
  101: "ENETUNREACH", 105: "ENOBUFS", 110: "ETIMEDOUT", 113: "EHOSTUNREACH",
};

/** The symbolic name of an errno value ("EEXIST"), or "E<n>" when unknown. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `E${errno}`;
}
