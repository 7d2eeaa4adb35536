/**
 * A blocking netlink socket with request/ack and dump transactions. Each
 * request gets the next sequence number; replies for other sequence numbers
 * (left over from an earlier, abandoned request) are skipped. Runs only on
 * worker threads (see syscalls.ts).
 */
import { align4, attr, parseAttributes, Reader, splitMessages, NLMSG_HDRLEN, type RawMessage } from "./codec.ts";
import { NetlinkError } from "./errors.ts";
import { NLM_F, NLMSG } from "./rtnl.ts";
import {
  bindNetlink, closeFd, errnoName, netlinkSocket, receive, send, setNetlinkOption, setReceiveBuffer,
  setReceiveTimeout, SyscallError,
} from "./syscalls.ts";

const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const NETLINK_GET_STRICT_CHK = 12;
const NLMSGERR_ATTR_MSG = 1;
/** A lost reply must not wedge the worker forever. */
const REPLY_TIMEOUT_MS = 10_000;
const RECEIVE_BUFFER = 1 << 20;
/**
 * Where every socket of this thread receives: a receive copies out what it
 * keeps before it returns, and a thread receives on one socket at a time.
 * Allocating 64 KiB per socket cost more than opening the socket itself
 * (one is opened in each pod's namespace per attach).
 */
const receiveScratch = new Uint8Array(64 * 1024);

/** What the socket sends and receives through: the kernel, or a test double. */
export interface Transport {
  send(data: Uint8Array): void;
  /** Fills `buf` with one datagram; returns its full length (> buf.length if truncated). */
  receive(buf: Uint8Array): number;
  close(): void;
}

/** One request of a transaction: how to build it (given its sequence number), and what it is about. */
export interface Exchange {
  build: (seq: number) => Uint8Array;
  ctx: RequestContext;
  /** A dump: its replies run to NLMSG_DONE. Otherwise they run to the ack. */
  dump?: boolean;
}

/**
 * What one request of a transaction got: its replies (for a dump, whether
 * the kernel flagged it as interrupted by a change), or the kernel's error.
 */
export type Outcome = { ok: true; replies: RawMessage[]; interrupted: boolean } | { ok: false; error: NetlinkError };

/** Names a transaction in errors: which request, about which device. */
export interface RequestContext {
  request: string;
  device?: string;
}

export class NetlinkSocket {
  readonly #transport: Transport;
  #seq = Math.floor(Math.random() * 0x7fffffff);

  constructor(transport: Transport) {
    this.#transport = transport;
  }

  /** A kernel socket of `protocol` in the calling thread's current network namespace. */
  static open(protocol: number, options: { groups?: number; replyTimeoutMs?: number } = {}): NetlinkSocket {
    let fd: number;
    try {
      fd = netlinkSocket(protocol);
    } catch (err) {
      throw syscallFailure(err, { request: `socket(NETLINK ${protocol})` });
    }
    try {
      setReceiveBuffer(fd, RECEIVE_BUFFER);
      setReceiveTimeout(fd, options.replyTimeoutMs ?? REPLY_TIMEOUT_MS);
      // Errors then carry the kernel's explanation and no copy of our request.
      setNetlinkOption(fd, NETLINK_CAP_ACK, 1);
      setNetlinkOption(fd, NETLINK_EXT_ACK, 1);
      // Strict checking: the kernel validates requests and honours dump
      // filters (one device's addresses and routes, not the whole table).
      setNetlinkOption(fd, NETLINK_GET_STRICT_CHK, 1);
      bindNetlink(fd, options.groups ?? 0);
    } catch (err) {
      closeFd(fd);
      throw syscallFailure(err, { request: `open netlink protocol ${protocol}` });
    }
    return new NetlinkSocket({
      send: (data) => {
        send(fd, data);
      },
      receive: (buf) => receive(fd, buf),
      close: () => {
        closeFd(fd);
      },
    });
  }

  nextSeq(): number {
    this.#seq = (this.#seq + 1) & 0x7fffffff;
    return this.#seq;
  }

  /**
   * Sends a request built with `seq` and returns the replies before the ack
   * (empty for a plain change; the object for a GET). Throws NETLINK_ERRNO
   * for a negative ack.
   */
  request(build: (seq: number) => Uint8Array, ctx: RequestContext): RawMessage[] {
    return this.#alone({ build, ctx }).replies;
  }

  /** Sends a dump request and returns every message up to NLMSG_DONE. */
  dump(build: (seq: number) => Uint8Array, ctx: RequestContext): RawMessage[] {
    const outcome = this.#alone({ build, ctx, dump: true });
    if (outcome.interrupted) {
      throw new NetlinkError("NETLINK_DUMP_INTERRUPTED", `${ctx.request}: the dump changed while it was read (NLM_F_DUMP_INTR); retry`, ctx);
    }
    return outcome.replies;
  }

  /**
   * Sends `exchanges` in one datagram and reads every reply: one system call
   * out instead of one per request. The kernel handles the messages of a
   * datagram in order and goes on after one fails, so each request has an
   * outcome of its own, and a request runs even when one before it failed.
   * At most one may be a dump: the kernel refuses a second one while the
   * first is still being read. A failed system call or a malformed reply
   * throws, since it leaves every outcome unknown.
   */
  transact(exchanges: readonly Exchange[]): Outcome[] {
    if (exchanges.filter((e) => e.dump === true).length > 1) throw new Error("a netlink transaction holds at most one dump");
    const seqs = exchanges.map(() => this.nextSeq());
    const pending = new Map(seqs.map((seq, i) => [seq, i]));
    const replies: RawMessage[][] = exchanges.map(() => []);
    const interrupted: boolean[] = exchanges.map(() => false);
    const outcomes: Outcome[] = [];
    const ctxOf = (i: number | undefined): RequestContext => exchanges[i ?? 0]?.ctx ?? { request: "netlink" };
    this.#send(concat(exchanges.map((e, i) => e.build(seqs[i] ?? 0))), ctxOf(0));
    while (pending.size > 0) {
      // A failure to receive is reported against the first request still waiting.
      const waiting = pending.values().next().value;
      for (const m of this.#receive(ctxOf(waiting))) {
        const i = pending.get(m.seq);
        if (i === undefined || m.type === NLMSG.NOOP) continue;
        if ((m.flags & NLM_F.DUMP_INTR) !== 0) interrupted[i] = true;
        if (m.type !== NLMSG.ERROR && m.type !== NLMSG.DONE) {
          replies[i]?.push(m);
          continue;
        }
        pending.delete(m.seq);
        const error = m.type === NLMSG.ERROR ? errorOf(m, ctxOf(i)) : undefined;
        outcomes[i] = error === undefined ? { ok: true, replies: replies[i] ?? [], interrupted: interrupted[i] ?? false } : { ok: false, error };
      }
    }
    return outcomes;
  }

  #alone(exchange: Exchange): Outcome & { ok: true } {
    const [outcome] = this.transact([exchange]);
    if (outcome === undefined) throw new Error(`${exchange.ctx.request}: the transaction lost its request`);
    if (!outcome.ok) throw outcome.error;
    return outcome;
  }

  /** Reads whatever the next datagram holds (for event subscriptions). */
  receiveMessages(ctx: RequestContext): RawMessage[] {
    return this.#receive(ctx);
  }

  close(): void {
    this.#transport.close();
  }

  #send(data: Uint8Array, ctx: RequestContext): void {
    try {
      this.#transport.send(data);
    } catch (err) {
      throw syscallFailure(err, ctx);
    }
  }

  #receive(ctx: RequestContext): RawMessage[] {
    let n: number;
    try {
      n = this.#transport.receive(receiveScratch);
    } catch (err) {
      throw syscallFailure(err, ctx);
    }
    if (n > receiveScratch.length) {
      throw new NetlinkError("NETLINK_MALFORMED", `${ctx.request}: a ${n}-byte reply did not fit the ${receiveScratch.length}-byte buffer`, ctx);
    }
    try {
      // Copy: the buffer is reused by the next receive, replies outlive it.
      return splitMessages(receiveScratch.slice(0, n));
    } catch (err) {
      throw withContext(err, ctx);
    }
  }
}

/** Sends several messages as one datagram. */
function concat(messages: readonly Uint8Array[]): Uint8Array {
  if (messages.length === 1 && messages[0] !== undefined) return messages[0];
  const out = new Uint8Array(messages.reduce((n, m) => n + align4(m.length), 0));
  let at = 0;
  for (const m of messages) {
    out.set(m, at);
    at += align4(m.length);
  }
  return out;
}

/** Decodes an NLMSG_ERROR body: zero is an ack (undefined), negative an errno. */
function errorOf(m: RawMessage, ctx: RequestContext): NetlinkError | undefined {
  const r = new Reader(m.body);
  let error: number;
  try {
    error = r.i32("nlmsgerr.error");
  } catch (err) {
    throw withContext(err, ctx);
  }
  if (error === 0) return undefined;
  const errno = -error;
  const name = errnoName(errno);
  let kernelMessage: string | undefined;
  if ((m.flags & NLM_F.ACK_TLVS) !== 0) {
    // The echoed request header (capped: header only) precedes the TLVs.
    const echoed = (m.flags & NLM_F.CAPPED) !== 0 ? NLMSG_HDRLEN : r.remaining >= 4 ? new Reader(m.body.subarray(4)).u32() : 0;
    if (r.remaining >= echoed) {
      r.skip(echoed);
      try {
        kernelMessage = attr.string(parseAttributes(r.rest()), NLMSGERR_ATTR_MSG);
      } catch {
        // A garbled extended ack must not hide the errno itself.
        kernelMessage = undefined;
      }
    }
  }
  const about = ctx.device === undefined ? "" : ` (device ${ctx.device})`;
  const detail = kernelMessage === undefined ? "" : `: ${kernelMessage}`;
  return new NetlinkError("NETLINK_ERRNO", `${ctx.request}${about} failed with ${name}${detail}`, {
    ...ctx,
    errno,
    errnoName: name,
    ...(kernelMessage !== undefined && { kernelMessage }),
  });
}

function syscallFailure(err: unknown, ctx: RequestContext): NetlinkError {
  if (err instanceof NetlinkError) return err;
  if (err instanceof SyscallError) {
    const about = ctx.device === undefined ? "" : ` (device ${ctx.device})`;
    return new NetlinkError("NETLINK_SYSCALL", `${ctx.request}${about}: ${err.message}`, { ...ctx, errno: err.errno, errnoName: errnoName(err.errno) }, { cause: err });
  }
  throw err;
}

/** Adds the request and device to a codec error raised while parsing a reply. */
export function withContext(err: unknown, ctx: RequestContext): unknown {
  if (!(err instanceof NetlinkError) || err.request !== undefined) return err;
  const about = ctx.device === undefined ? "" : ` (device ${ctx.device})`;
  return new NetlinkError(err.code, `${ctx.request}${about}: ${err.message}`, { ...ctx, ...(err.errno !== undefined && { errno: err.errno }) }, { cause: err });
}
