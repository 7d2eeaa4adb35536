/**
 * RDMA netlink (NETLINK_RDMA) messages for moving an RDMA device into a
 * network namespace in exclusive mode. Numbers are from the kernel's uapi
 * rdma/rdma_netlink.h (checked against linux-libc-dev on this machine):
 * the nlmsg type is RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, cmd) = (5 << 10) + cmd,
 * and the body is attributes only, without a family header.
 */
import { attr, parseAttributes, Writer } from "./codec.ts";
import { NetlinkError } from "./errors.ts";
import { NLM_F } from "./rtnl.ts";

export const NETLINK_RDMA = 20;
const RDMA_NL_NLDEV = 5;
export const RDMA_NLDEV_CMD = { GET: 1, SET: 2, SYS_GET: 6 } as const;
const RDMA_NLDEV_ATTR_DEV_INDEX = 1;
const RDMA_NLDEV_ATTR_DEV_NAME = 2;
const RDMA_NLDEV_SYS_ATTR_NETNS_MODE = 66;
const RDMA_NLDEV_NET_NS_FD = 68;

export function rdmaType(cmd: number): number {
  return (RDMA_NL_NLDEV << 10) + cmd;
}

/** "shared": every namespace sees every RDMA device; "exclusive": a device belongs to one. */
export type RdmaNetnsMode = "shared" | "exclusive";

export interface RdmaDevice {
  index: number;
  name: string;
}

export function encodeRdmaSetNetns(seq: number, deviceIndex: number, netnsFd: number): Uint8Array {
  return new Writer()
    .message(rdmaType(RDMA_NLDEV_CMD.SET), NLM_F.REQUEST | NLM_F.ACK, seq)
    .attrU32(RDMA_NLDEV_ATTR_DEV_INDEX, deviceIndex)
    .attrU32(RDMA_NLDEV_NET_NS_FD, netnsFd)
    .join()
    .finish();
}

export function encodeRdmaSysGet(seq: number): Uint8Array {
  return new Writer().message(rdmaType(RDMA_NLDEV_CMD.SYS_GET), NLM_F.REQUEST | NLM_F.ACK, seq).join().finish();
}

export function encodeRdmaDumpDevices(seq: number): Uint8Array {
  return new Writer().message(rdmaType(RDMA_NLDEV_CMD.GET), NLM_F.REQUEST | NLM_F.DUMP, seq).join().finish();
}

export function decodeRdmaNetnsMode(body: Uint8Array): RdmaNetnsMode {
  const mode = attr.u8(parseAttributes(body), RDMA_NLDEV_SYS_ATTR_NETNS_MODE, "RDMA_NLDEV_SYS_ATTR_NETNS_MODE");
  if (mode === undefined) throw new NetlinkError("NETLINK_MALFORMED", "RDMA system reply lacks RDMA_NLDEV_SYS_ATTR_NETNS_MODE");
  // The kernel reports 1 for shared, 0 for exclusive.
  return mode === 0 ? "exclusive" : "shared";
}

export function decodeRdmaDevice(body: Uint8Array): RdmaDevice {
  const a = parseAttributes(body);
  const index = attr.u32(a, RDMA_NLDEV_ATTR_DEV_INDEX, "RDMA_NLDEV_ATTR_DEV_INDEX");
  const name = attr.string(a, RDMA_NLDEV_ATTR_DEV_NAME);
  if (index === undefined || name === undefined) {
    throw new NetlinkError("NETLINK_MALFORMED", "RDMA device reply lacks RDMA_NLDEV_ATTR_DEV_INDEX or RDMA_NLDEV_ATTR_DEV_NAME");
  }
  return { index, name };
}
