/**
 * The link-event thread: blocks in recv on a socket joined to RTMGRP_LINK
 * and forwards each RTM_NEWLINK/RTM_DELLINK to the main thread. A short
 * receive timeout lets worker.terminate() take effect promptly.
 */
import { parentPort } from "node:worker_threads";
import { NetlinkError } from "./errors.ts";
import { decodeLink, NETLINK_ROUTE, RTM, RTMGRP_LINK } from "./rtnl.ts";
import { NetlinkSocket } from "./socket.ts";
import type { LinkEvent } from "./events.ts";

const port = parentPort;
if (port === null) throw new Error("netlink/events-worker.ts must run as a worker thread");

const socket = NetlinkSocket.open(NETLINK_ROUTE, { groups: RTMGRP_LINK, replyTimeoutMs: 250 });
port.postMessage({ kind: "subscribed" } satisfies LinkEvent);
const ctx = { request: "RTMGRP_LINK subscription" };
for (;;) {
  let event: LinkEvent | undefined;
  try {
    for (const m of socket.receiveMessages(ctx)) {
      if (m.type !== RTM.NEWLINK && m.type !== RTM.DELLINK) continue;
      event = { kind: m.type === RTM.NEWLINK ? "new" : "delete", link: decodeLink(m.body) };
      port.postMessage(event);
    }
  } catch (err) {
    if (err instanceof NetlinkError && err.errnoName === "EAGAIN") continue;
    // ENOBUFS: the kernel dropped events; the consumer must rescan everything.
    if (err instanceof NetlinkError && err.errnoName === "ENOBUFS") {
      port.postMessage({ kind: "overflow" } satisfies LinkEvent);
      continue;
    }
    throw err;
  }
}
