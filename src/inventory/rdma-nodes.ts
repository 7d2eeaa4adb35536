/**
 * The character devices of one RDMA device, found in sysfs: the one place
 * that knows how. Discovery lists them as the device's attributes; the CDI
 * spec (cdi/) gives them to the containers that use the device.
 *
 * The kernel registers each device's uverbs node under infiniband_verbs and
 * its umad and issm nodes under infiniband_mad, both as classes
 * (/sys/class/...) and below the PCI function that owns the device; every
 * node's `ibdev` names its RDMA device. rdma_cm is one node for all devices.
 */
import type { SysfsRoot } from "./sysfs.ts";

/** One node under /dev/infiniband. */
export interface RdmaCharNode {
  /** Its name under /dev/infiniband ("uverbs0", "rdma_cm"). */
  name: string;
  /** Its sysfs directory, as seen from inside the root; `dev` in it holds "major:minor". */
  sysfsDir: string;
}

const RDMA_CM: RdmaCharNode = { name: "rdma_cm", sysfsDir: "/sys/class/misc/rdma_cm" };

/**
 * The nodes of RDMA device `ibdev` (mlx5_0): each uverbs, umad and issm node
 * whose `ibdev` names it, in sysfs order (uverbs first), then rdma_cm.
 * `under` holds the infiniband_verbs and infiniband_mad directories:
 * /sys/class, or the directory of the PCI function the device is on.
 */
export async function rdmaCharNodes(sysfs: SysfsRoot, ibdev: string, under = "/sys/class"): Promise<RdmaCharNode[]> {
  const nodes: RdmaCharNode[] = [];
  for (const cls of ["infiniband_verbs", "infiniband_mad"]) {
    for (const name of sysfs.list(`${under}/${cls}`)) {
      const sysfsDir = `${under}/${cls}/${name}`;
      if ((await sysfs.text(`${sysfsDir}/ibdev`)) === ibdev) nodes.push({ name, sysfsDir });
    }
  }
  if (!nodes.some((n) => n.name === RDMA_CM.name)) nodes.push(RDMA_CM);
  return nodes;
}
