/**
 * The operations the netlink worker runs, as plain data (they cross a
 * thread boundary), and their executor. Each operation of a batch names its
 * network namespace: the worker thread enters one only to open a socket (or
 * write a sysctl) and returns at once; setns affects this thread alone,
 * never the agent's main thread.
 */
import { closeSync, openSync, writeFileSync } from "node:fs";
import { INTERFACE_NAME } from "../common/linux-names.ts";
import { NetlinkError } from "./errors.ts";
import {
  decodeRdmaDevice, decodeRdmaNetnsMode, encodeRdmaDumpDevices, encodeRdmaSetNetns, encodeRdmaSysGet, NETLINK_RDMA,
  type RdmaDevice, type RdmaNetnsMode,
} from "./rdma.ts";
import {
  decodeAddress, decodeLink, decodeRoute, encodeAddress, encodeDeleteLink, encodeDumpAddresses, encodeDumpLinks,
  encodeDumpRoutes, encodeGetLink, encodeNewLink, encodeRoute, encodeSetLink, NETLINK_ROUTE, RT_TABLE, RTM, RTPROT,
  type Address, type AddressSpec, type Link, type LinkChange, type NewLinkSpec, type Route, type RouteSpec,
} from "./rtnl.ts";
import { NetlinkSocket, withContext, type Exchange, type Outcome, type RequestContext } from "./socket.ts";
import { enterNetworkNamespace, SyscallError, errnoName } from "./syscalls.ts";
import { AF_INET, AF_INET6, type Family } from "./ip.ts";

/** A link change as data: the target namespace is a path the worker opens. */
export type LinkUpdate = Omit<LinkChange, "netnsFd"> & { netns?: string };

export type Op =
  | { op: "getLink"; key: { index: number } | { name: string } }
  | { op: "listLinks" }
  /** A link with its addresses and the routes configured through it (see LinkState). */
  | { op: "linkState"; key: { index: number } | { name: string } }
  | { op: "setLink"; index: number; device: string; update: LinkUpdate }
  /**
   * With `into` (a namespace path the worker opens), a macvlan or ipvlan
   * child is created there, its parent named in the batch's namespace.
   */
  | { op: "createLink"; spec: NewLinkSpec; into?: string }
  | { op: "deleteLink"; index: number; device: string }
  /** With `index`, only that device's addresses (filtered by the kernel). */
  | { op: "listAddresses"; index?: number }
  | { op: "addAddress"; spec: AddressSpec; device: string }
  | { op: "deleteAddress"; spec: AddressSpec; device: string }
  /** Routes in every table; with `oif`, only those through that device. */
  | { op: "listRoutes"; family: Family; oif?: number }
  | { op: "addRoute"; spec: RouteSpec; device: string }
  | { op: "deleteRoute"; spec: RouteSpec; device: string }
  /** Writes net.<sysctl.family>.<sysctl.table>.<device>.<sysctl.param> in the batch's namespace. */
  | { op: "writeSysctl"; sysctl: InterfaceSysctl; value: string; device: string }
  | { op: "rdmaNetnsMode" }
  | { op: "rdmaListDevices" }
  | { op: "rdmaSetNetns"; index: number; device: string; netns: string };

export interface OpResults {
  getLink: Link | null;
  listLinks: Link[];
  linkState: LinkState | null;
  setLink: null;
  createLink: null;
  deleteLink: null;
  listAddresses: Address[];
  addAddress: null;
  deleteAddress: null;
  listRoutes: Route[];
  addRoute: null;
  deleteRoute: null;
  writeSysctl: null;
  rdmaNetnsMode: RdmaNetnsMode;
  rdmaListDevices: RdmaDevice[];
  rdmaSetNetns: null;
}

export type ResultOf<O extends Op> = OpResults[O["op"]];

/** The results of a batch of operations `T`, in order. */
export type Results<T extends readonly Op[]> = { -readonly [K in keyof T]: T[K] extends Op ? ResultOf<T[K]> : never };

/** An operation and the network namespace it runs in (undefined: the agent's). */
export interface PlacedOp {
  netns: string | undefined;
  op: Op;
  /**
   * May go to the kernel in one datagram with the operations before it in
   * the same namespace (one system call for all). The kernel then runs it
   * even when one of those failed; the batch still fails with the first
   * error. For callers that undo the whole batch on any failure.
   */
  pipelined?: boolean;
}

/**
 * Runs batches of operations: NetlinkClient on its worker thread, for code
 * on the agent's main thread; LocalNetlink on the calling thread, for code
 * that itself runs on a worker thread.
 */
export interface BatchRunner {
  /** Runs `ops` in order in `netns` (undefined: the agent's namespace), all or up to the first error. */
  batch<const T extends readonly Op[]>(netns: string | undefined, ops: T): Promise<Results<T>>;
  /** Runs `ops` in order, each in its own namespace, all or up to the first error (see PlacedOp.pipelined). */
  batchAcross(ops: readonly PlacedOp[]): Promise<unknown[]>;
}

/** BatchRunner.batch for any runner: every operation in `netns`, as one batchAcross. */
export function batchIn<const T extends readonly Op[]>(runner: Pick<BatchRunner, "batchAcross">, netns: string | undefined, ops: T): Promise<Results<T>> {
  return runner.batchAcross(ops.map((op) => ({ netns, op }))) as Promise<Results<T>>;
}

/**
 * Called after every successful batch with how long each operation took
 * (mostly kernel time): for metrics and benchmarks, which can tell a
 * namespace move's own cost from everything around it.
 */
export type OpTimesListener = (ops: readonly PlacedOp[], opMs: readonly number[]) => void;

/** A per-interface sysctl; the interface is the op's `device`. */
export interface InterfaceSysctl {
  family: "ipv4" | "ipv6";
  table: "conf" | "neigh";
  param: string;
}

export interface LinkState {
  link: Link;
  addresses: Address[];
  /**
   * The routes through the link, in every table, that someone configured:
   * not those the kernel makes by itself (prefix routes of its addresses,
   * the local table), which come back with the addresses. What a move
   * loses and a restore must put back.
   */
  routes: Route[];
}

const DUMP_ATTEMPTS = 3;
const SYSCTL_PARAM = /^[a-z0-9_]+$/;

/**
 * Runs batches for one worker thread. `hostNsFd` is the namespace the thread
 * started in (the agent's); the thread always returns to it.
 */
export class OpExecutor {
  readonly #hostNsFd: number;
  readonly #hostRoute: NetlinkSocket;
  #hostRdma: NetlinkSocket | undefined;
  /**
   * The namespaces this thread used since it last went idle, by path: the
   * open namespace file (a move's target, or where to enter) and the route
   * socket opened inside it.
   */
  readonly #namespaces = new Map<string, { fd: number; route?: NetlinkSocket }>();

  constructor(hostNsFd: number) {
    this.#hostNsFd = hostNsFd;
    this.#hostRoute = NetlinkSocket.open(NETLINK_ROUTE);
  }

  /**
   * Runs `ops` in order, each in its namespace; stops at the first failure
   * (pipelined operations sent with the failed one have run too: see
   * PlacedOp.pipelined). One socket per namespace serves the whole batch, and the batches that
   * follow it without the thread going idle (an attach's lookups and its
   * moves): opening one inside a namespace costs more than most requests.
   * They are closed as soon as the thread goes idle, since an open socket
   * keeps its namespace alive after the pod is gone.
   */
  runBatch(ops: readonly PlacedOp[], opMs: number[] = []): unknown[] {
    const results: unknown[] = [];
    for (let first = 0; first < ops.length; first = results.length) {
      const { netns, op } = ops[first] as PlacedOp;
      const together = this.#requestsFrom(ops, first);
      const started = performance.now();
      try {
        if (together === undefined) results.push(this.#run(op, netns));
        else results.push(...this.#runTogether(together, netns, first));
      } catch (err) {
        throw err instanceof NetlinkError && err.opIndex === undefined ? err.atOp(first) : err;
      } finally {
        // Operations sent together share their datagram's time.
        const count = together?.length ?? 1;
        const share = (performance.now() - started) / count;
        for (let k = 0; k < count; k++) opMs.push(share);
      }
    }
    return results;
  }

  /**
   * The requests that go to the kernel in one datagram from operation
   * `first` on: its own, then those of the pipelined operations right after
   * it in the same namespace, while each is a single request (at most one
   * of them a dump); undefined when operation `first` is not a single
   * request (see #run).
   */
  #requestsFrom(ops: readonly PlacedOp[], first: number): SingleRequest[] | undefined {
    const head = ops[first];
    const headRequest = head === undefined ? undefined : singleRequest(head.op);
    if (head === undefined || headRequest === undefined) return undefined;
    const together = [headRequest];
    for (const placed of ops.slice(first + 1)) {
      const request = placed.pipelined === true && placed.netns === head.netns ? singleRequest(placed.op) : undefined;
      if (request === undefined || (request.dump === true && together.some((r) => r.dump === true))) break;
      together.push(request);
    }
    return together;
  }

  /** Sends `requests` in one datagram, then reads each result in order; the first failure is thrown as operation `first` + its position. */
  #runTogether(requests: readonly SingleRequest[], netns: string | undefined, first: number): unknown[] {
    const socket = this.#route(netns);
    const outcomes = socket.transact(requests);
    return requests.map((request, k) => {
      try {
        return this.#finish(socket, request, outcomes[k]);
      } catch (err) {
        throw err instanceof NetlinkError ? err.atOp(first + k) : err;
      }
    });
  }

  /** The result of a request from its outcome; an interrupted dump is read again alone (the changes sent with it are not repeated). */
  #finish(socket: NetlinkSocket, request: SingleRequest, outcome: Outcome | undefined): unknown {
    if (outcome === undefined) throw new Error(`${request.ctx.request}: the transaction lost its request`);
    return outcome.ok && outcome.interrupted ? this.#exchange(socket, request) : request.finish(outcome);
  }

  /** The route socket of `netns`: the agent's, or one opened inside the namespace that serves until the thread goes idle. */
  #route(netns: string | undefined): NetlinkSocket {
    if (netns === undefined) return this.#hostRoute;
    const entry = this.#namespace(netns, enterRequest(netns));
    entry.route ??= this.#inNamespace(netns, () => NetlinkSocket.open(NETLINK_ROUTE));
    return entry.route;
  }

  /** Runs one request alone; a dump the kernel flags as interrupted by a change is read again (a few times). */
  #exchange(socket: NetlinkSocket, request: SingleRequest): unknown {
    for (let attempt = 1; ; attempt++) {
      const [outcome] = socket.transact([request]);
      if (outcome === undefined) throw new Error(`${request.ctx.request}: the transaction lost its request`);
      if (!outcome.ok || !outcome.interrupted) return request.finish(outcome);
      if (attempt >= DUMP_ATTEMPTS) {
        throw new NetlinkError("NETLINK_DUMP_INTERRUPTED", `${request.ctx.request}: the dump changed while it was read (NLM_F_DUMP_INTR), ${attempt} times`, request.ctx);
      }
    }
  }

  /**
   * The namespace at `path`, opened once per stretch of work: an attach
   * opens its pod's namespace for the move's target and again to enter it,
   * and each open costs as much as a request. Everything opened is closed
   * as soon as the thread goes idle, since an open namespace file or socket
   * keeps the namespace alive after its pod is gone.
   */
  #namespace(path: string, ctx: RequestContext): { fd: number; route?: NetlinkSocket } {
    let entry = this.#namespaces.get(path);
    if (entry === undefined) {
      entry = { fd: openNamespace(path, ctx) };
      this.#namespaces.set(path, entry);
      if (this.#namespaces.size === 1) setImmediate(() => { this.#release(); });
    }
    return entry;
  }

  #release(): void {
    for (const { fd, route } of this.#namespaces.values()) {
      route?.close();
      closeSync(fd);
    }
    this.#namespaces.clear();
  }

  /** Runs an operation that is not a single request: several, or other calls. */
  #run(op: Op, netns: string | undefined): unknown {
    if (op.op === "setLink" && op.update.netns !== undefined) {
      // A move: the kernel takes the target namespace by an open descriptor.
      const { netns: target, ...change } = op.update;
      const ctx = { request: `RTM_NEWLINK ${describeUpdate(op.update)}`, device: op.device };
      const { fd } = this.#namespace(target, ctx);
      this.#route(netns).request((seq) => encodeSetLink(seq, op.index, { ...change, netnsFd: fd }), ctx);
      return null;
    }
    if (op.op === "createLink" && op.into !== undefined) {
      const ctx = { request: `RTM_NEWLINK create ${op.spec.kind} in ${op.into}`, device: op.spec.name };
      const { spec } = op;
      if (spec.kind !== "macvlan" && spec.kind !== "ipvlan") throw new NetlinkError("NETLINK_MALFORMED", `a ${spec.kind} link is created in the batch's namespace, not in another`, ctx);
      const { fd } = this.#namespace(op.into, ctx);
      this.#route(netns).request((seq) => encodeNewLink(seq, { ...spec, netnsFd: fd }), ctx);
      return null;
    }
    switch (op.op) {
      case "linkState": {
        const socket = this.#route(netns);
        // With the index known, the address dump rides in the link request's datagram.
        const early = "index" in op.key ? addressesRequest(op.key.index) : undefined;
        const linkRequest = getLinkRequest(op.key);
        const outcomes = socket.transact(early === undefined ? [linkRequest] : [linkRequest, early]);
        const link = this.#finish(socket, linkRequest, outcomes[0]) as Link | null;
        if (link === null) return null;
        // The kernel filters both dumps to this device (strict checking), so
        // a node with a large routing table costs no more than a small one.
        const state: LinkState = {
          link,
          addresses: (early === undefined ? this.#exchange(socket, addressesRequest(link.index)) : this.#finish(socket, early, outcomes[1])) as Address[],
          routes: this.#exchange(socket, routesRequest(undefined, link.index, configuredRoute)) as Route[],
        };
        return state;
      }
      case "writeSysctl":
        this.#writeSysctl(netns, op.sysctl, op.value, op.device);
        return null;
      case "rdmaNetnsMode": {
        const [reply] = this.#rdma().request(encodeRdmaSysGet, { request: "RDMA_NLDEV_CMD_SYS_GET" });
        if (reply === undefined) throw new NetlinkError("NETLINK_MALFORMED", "RDMA_NLDEV_CMD_SYS_GET returned no reply", { request: "RDMA_NLDEV_CMD_SYS_GET" });
        return decodeWith(reply.body, decodeRdmaNetnsMode, { request: "RDMA_NLDEV_CMD_SYS_GET" });
      }
      case "rdmaListDevices":
        return this.#rdma().dump(encodeRdmaDumpDevices, { request: "RDMA_NLDEV_CMD_GET dump" })
          .map((m) => decodeWith(m.body, decodeRdmaDevice, { request: "RDMA_NLDEV_CMD_GET dump" }));
      case "rdmaSetNetns": {
        const ctx = { request: "RDMA_NLDEV_CMD_SET netns", device: op.device };
        const { fd } = this.#namespace(op.netns, ctx);
        this.#rdma().request((seq) => encodeRdmaSetNetns(seq, op.index, fd), ctx);
        return null;
      }
      default:
        throw new Error(`operation ${op.op} has no handler`);
    }
  }

  #rdma(): NetlinkSocket {
    this.#hostRdma ??= NetlinkSocket.open(NETLINK_RDMA);
    return this.#hostRdma;
  }

  #writeSysctl(netns: string | undefined, sysctl: InterfaceSysctl, value: string, device: string): void {
    const key = `net.${sysctl.family}.${sysctl.table}.${device}.${sysctl.param}`;
    if (!SYSCTL_PARAM.test(sysctl.param) || !INTERFACE_NAME.test(device) || device === "." || device === "..") {
      throw new NetlinkError("NETLINK_SYSCALL", `sysctl "${key}" does not name an interface and a parameter`, { request: "write sysctl", device });
    }
    // Built from parts, so an interface name with a dot ("eth0.100") stays
    // one path element. /proc/sys/net resolves to the namespace of the
    // thread that opens it.
    const path = `/proc/sys/net/${sysctl.family}/${sysctl.table}/${device}/${sysctl.param}`;
    const write = (): void => {
      try {
        writeFileSync(path, value);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "EIO";
        throw new NetlinkError("NETLINK_SYSCALL", `write sysctl ${key}=${value} (device ${device}): ${code}`, { request: `write sysctl ${key}`, device, errnoName: code }, { cause: err });
      }
    };
    if (netns === undefined) write();
    else this.#inNamespace(netns, write);
  }

  /** Runs `fn` with this thread inside `netns`, then returns to the host namespace. */
  #inNamespace<T>(netns: string, fn: () => T): T {
    const { fd } = this.#namespace(netns, enterRequest(netns));
    try {
      enterNetworkNamespace(fd);
    } catch (err) {
      throw asNetlinkError(err, { request: `setns ${netns}` });
    }
    let result: { value: T } | { error: unknown };
    try {
      result = { value: fn() };
    } catch (error) {
      result = { error };
    }
    try {
      enterNetworkNamespace(this.#hostNsFd);
    } catch (err) {
      // This thread is now stuck in a pod's namespace: it must not run
      // anything else. Ending it lets the client start a clean one.
      throw new ThreadPoisoned(`cannot return the netlink thread to the host namespace: ${String(err)}`);
    }
    if ("error" in result) throw result.error;
    return result.value;
  }
}

/** Thrown when the worker thread could not leave a pod namespace; the worker exits. */
export class ThreadPoisoned extends Error {}

/** An operation that is exactly one netlink request: the request, and how its outcome becomes the operation's result. */
interface SingleRequest extends Exchange {
  finish(outcome: Outcome): unknown;
}

/** The request of `op` when it is one rtnetlink request; undefined for the operations made of several steps or of other calls. */
function singleRequest(op: Op): SingleRequest | undefined {
  switch (op.op) {
    case "getLink":
      return getLinkRequest(op.key);
    case "listLinks":
      return dumpRequest(encodeDumpLinks, RTM.NEWLINK, decodeLink, { request: "RTM_GETLINK dump" });
    case "listAddresses":
      return addressesRequest(op.index);
    case "listRoutes":
      return routesRequest(op.family, op.oif);
    case "setLink": {
      const { netns, ...change } = op.update;
      if (netns !== undefined) return undefined;
      return changeRequest({ request: `RTM_NEWLINK ${describeUpdate(op.update)}`, device: op.device }, (seq) => encodeSetLink(seq, op.index, change));
    }
    case "createLink":
      if (op.into !== undefined) return undefined;
      return changeRequest({ request: `RTM_NEWLINK create ${op.spec.kind}`, device: op.spec.name }, (seq) => encodeNewLink(seq, op.spec));
    case "deleteLink":
      return changeRequest({ request: "RTM_DELLINK", device: op.device }, (seq) => encodeDeleteLink(seq, op.index));
    case "addAddress":
    case "deleteAddress": {
      const verb = op.op === "addAddress" ? "add" : "delete";
      const ctx = { request: `RTM_${verb === "add" ? "NEW" : "DEL"}ADDR ${op.spec.address}/${op.spec.prefixLength}`, device: op.device };
      return changeRequest(ctx, (seq) => encodeAddress(seq, verb, op.spec));
    }
    case "addRoute":
    case "deleteRoute": {
      const verb = op.op === "addRoute" ? "add" : "delete";
      const dst = op.spec.dst === undefined ? "default" : `${op.spec.dst}/${op.spec.dstLength}`;
      const ctx = { request: `RTM_${verb === "add" ? "NEW" : "DEL"}ROUTE ${dst} table ${op.spec.table ?? 254}`, device: op.device };
      return changeRequest(ctx, (seq) => encodeRoute(seq, verb, op.spec));
    }
    default:
      return undefined;
  }
}

function changeRequest(ctx: RequestContext, build: (seq: number) => Uint8Array): SingleRequest {
  return {
    build,
    ctx,
    finish: (outcome) => {
      if (!outcome.ok) throw outcome.error;
      return null;
    },
  };
}

/** A link by index or name; null when there is none (ENODEV). */
function getLinkRequest(key: { index: number } | { name: string }): SingleRequest {
  const ctx = { request: "RTM_GETLINK", device: "index" in key ? `ifindex ${key.index}` : key.name };
  return {
    build: (seq) => encodeGetLink(seq, key),
    ctx,
    finish: (outcome) => {
      if (!outcome.ok) {
        if (outcome.error.errnoName === "ENODEV") return null;
        throw outcome.error;
      }
      const [reply] = outcome.replies;
      return reply === undefined ? null : decodeWith(reply.body, decodeLink, ctx);
    },
  };
}

function addressesRequest(index: number | undefined): SingleRequest {
  const ctx = { request: "RTM_GETADDR dump", ...(index !== undefined && { device: `ifindex ${index}` }) };
  return dumpRequest((seq) => encodeDumpAddresses(seq, index), RTM.NEWADDR, decodeAddress, ctx);
}

/**
 * Routes of one family, or (no `family`) of IPv4 and IPv6 in one dump;
 * only those `accept` takes (by their rtmsg header) are decoded.
 */
function routesRequest(family: Family | undefined, oif: number | undefined, accept: (rtmsg: Uint8Array) => boolean = () => true): SingleRequest {
  const ctx = { request: `RTM_GETROUTE dump ${family === undefined ? "IPv4 and IPv6" : `IPv${family}`}`, ...(oif !== undefined && { device: `ifindex ${oif}` }) };
  // A dump of every family may hold others (MPLS): only IP routes are ours to read.
  const isIp = (body: Uint8Array): boolean => (body[0] === AF_INET || body[0] === AF_INET6) && accept(body);
  return dumpRequest((seq) => encodeDumpRoutes(seq, family, oif), RTM.NEWROUTE, decodeRoute, ctx, isIp);
}

/** Bytes of struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type. */
const RTMSG_TABLE = 4;
const RTMSG_PROTOCOL = 5;

/**
 * Not made by the kernel (see LinkState.routes), told from the header
 * alone: most of a device's routes are the kernel's, and decoding them
 * only to drop them was a tenth of a millisecond of each attach.
 */
function configuredRoute(rtmsg: Uint8Array): boolean {
  return rtmsg[RTMSG_PROTOCOL] !== RTPROT.KERNEL && rtmsg[RTMSG_TABLE] !== RT_TABLE.LOCAL;
}

/** A dump whose messages of `type` (and accepted by `accept`) decode to the result. */
function dumpRequest(
  build: (seq: number) => Uint8Array, type: number, decode: (b: Uint8Array) => unknown, ctx: RequestContext,
  accept: (body: Uint8Array) => boolean = () => true,
): SingleRequest {
  return {
    build,
    ctx,
    dump: true,
    finish: (outcome) => {
      if (!outcome.ok) throw outcome.error;
      return outcome.replies.filter((m) => m.type === type && accept(m.body)).map((m) => decodeWith(m.body, decode, ctx));
    },
  };
}

/** What entering `netns` is called in errors. */
function enterRequest(netns: string): RequestContext {
  return { request: `enter network namespace ${netns}` };
}

/** Opens the network namespace file at `path` (a pod's, or /proc/self/ns/net); the error names the request. */
function openNamespace(path: string, ctx: RequestContext): number {
  try {
    return openSync(path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "EIO";
    const about = ctx.device === undefined ? "" : ` (device ${ctx.device})`;
    throw new NetlinkError("NETLINK_SYSCALL", `${ctx.request}${about}: cannot open network namespace ${path}: ${code}`, { ...ctx, errnoName: code }, { cause: err });
  }
}

function asNetlinkError(err: unknown, ctx: RequestContext): unknown {
  if (err instanceof SyscallError) {
    return new NetlinkError("NETLINK_SYSCALL", `${ctx.request}: ${err.message}`, { ...ctx, errno: err.errno, errnoName: errnoName(err.errno) });
  }
  return err;
}

function decodeWith<T>(body: Uint8Array, decode: (b: Uint8Array) => T, ctx: RequestContext): T {
  try {
    return decode(body);
  } catch (err) {
    throw withContext(err, ctx);
  }
}

function describeUpdate(u: LinkUpdate): string {
  const parts: string[] = [];
  if (u.netns !== undefined) parts.push(`netns ${u.netns}`);
  if (u.newIfindex !== undefined) parts.push(`ifindex ${u.newIfindex}`);
  if (u.name !== undefined) parts.push(`name ${u.name}`);
  if (u.mtu !== undefined) parts.push(`mtu ${u.mtu}`);
  if (u.mac !== undefined) parts.push(`address ${u.mac}`);
  if (u.up !== undefined) parts.push(u.up ? "up" : "down");
  return parts.join(" ");
}
