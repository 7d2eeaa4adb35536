/**
 * Netlink errors. Each carries what the caller needs to act and to tell a
 * person: the kernel's errno by name, the request that failed ("RTM_NEWLINK
 * move"), and the device it was about.
 */
import { NetclaimError } from "../common/errors.ts";

export type NetlinkErrorCode =
  /** The kernel answered NLMSG_ERROR with a negative errno. */
  | "NETLINK_ERRNO"
  /** A reply did not parse (truncated, wrong lengths, unexpected type). */
  | "NETLINK_MALFORMED"
  /** A dump raced with a change (NLM_F_DUMP_INTR); retrying is safe. */
  | "NETLINK_DUMP_INTERRUPTED"
  /** A socket, setns or namespace file operation failed. */
  | "NETLINK_SYSCALL"
  /** The netlink worker thread died or is stopped. */
  | "NETLINK_WORKER";

export interface NetlinkErrorContext {
  /** The kernel errno (positive), for NETLINK_ERRNO and NETLINK_SYSCALL. */
  errno?: number;
  /** Its symbolic name, "EEXIST". */
  errnoName?: string;
  /** What was asked, "RTM_NEWLINK set-down". */
  request?: string;
  /** The device the request was about, "veth1" or "ifindex 7". */
  device?: string;
  /** The kernel's extended-ack text, when it sent one. */
  kernelMessage?: string;
  /** Position of the failed operation in its batch (the ones before it were applied). */
  opIndex?: number;
}

export class NetlinkError extends NetclaimError<NetlinkErrorCode> {
  readonly errno: number | undefined;
  readonly errnoName: string | undefined;
  readonly request: string | undefined;
  readonly device: string | undefined;
  readonly kernelMessage: string | undefined;
  readonly opIndex: number | undefined;

  constructor(code: NetlinkErrorCode, message: string, context: NetlinkErrorContext = {}, options?: ErrorOptions) {
    super(code, message, options);
    this.errno = context.errno;
    this.errnoName = context.errnoName;
    this.request = context.request;
    this.device = context.device;
    this.kernelMessage = context.kernelMessage;
    this.opIndex = context.opIndex;
  }

  /** True when the same request may simply be sent again. */
  get retryable(): boolean {
    return this.code === "NETLINK_DUMP_INTERRUPTED" || this.errnoName === "EAGAIN" || this.errnoName === "EBUSY";
  }

  /** A plain object that survives postMessage between threads. */
  toWire(): NetlinkErrorWire {
    return {
      code: this.code,
      message: this.message,
      context: {
        ...(this.errno !== undefined && { errno: this.errno }),
        ...(this.errnoName !== undefined && { errnoName: this.errnoName }),
        ...(this.request !== undefined && { request: this.request }),
        ...(this.device !== undefined && { device: this.device }),
        ...(this.kernelMessage !== undefined && { kernelMessage: this.kernelMessage }),
        ...(this.opIndex !== undefined && { opIndex: this.opIndex }),
      },
    };
  }

  static fromWire(w: NetlinkErrorWire): NetlinkError {
    return new NetlinkError(w.code, w.message, w.context);
  }

  /** The same error, marked as raised by operation `opIndex` of a batch. */
  atOp(opIndex: number): NetlinkError {
    return new NetlinkError(this.code, this.message, { ...this.toWire().context, opIndex }, { cause: this.cause });
  }
}

export interface NetlinkErrorWire {
  code: NetlinkErrorCode;
  message: string;
  context: NetlinkErrorContext;
}
