/**
 * The kinds of pod whose start-up bench/podstart compares. A variant makes
 * its networks once (setup), then describes each measured pod; teardown runs
 * after its pods are gone. The DRA variants (a netclaim interface, and one of
 * each) join this list once the agent runs on the node.
 */
import { apply, busyboxPod, createHostVeth, deleteNetwork, macvlanNetwork, uniqueName, type Manifest } from "../../test/e2e/harness.ts";

export interface Variant {
  /** Short, stable name: it prefixes the JSON keys (`<name>_p50_ms`). */
  readonly name: string;
  setup(): Promise<void>;
  pod(name: string, labels: Readonly<Record<string, string>>): Manifest;
  teardown(): Promise<void>;
}

export const plainVariant: Variant = {
  name: "plain",
  async setup() {},
  pod: (name, labels) => busyboxPod({ name, labels }),
  async teardown() {},
};

/** One Multus macvlan network (bridge mode on a host veth, host-local addresses). */
export function multusVariant(pods: number): Variant {
  const network = uniqueName("bench-macvlan");
  let removeMaster: (() => Promise<void>) | undefined;
  return {
    name: "multus",
    async setup() {
      const master = await createHostVeth(uniqueName("benchm"));
      removeMaster = () => master.remove();
      // Room for every measured pod plus warm-up; pods are deleted only at the end.
      const last = 100 + pods + 10;
      if (last > 199) throw new RangeError(`${String(pods)} pods do not fit the bench's macvlan range 198.51.100.100-199`);
      await apply(await macvlanNetwork(network, master.name, { subnet: "198.51.100.0/24", rangeStart: "198.51.100.100", rangeEnd: `198.51.100.${String(last)}` }));
    },
    pod: (name, labels) => busyboxPod({ name, labels, networks: [network] }),
    async teardown() {
      await deleteNetwork(network);
      await removeMaster?.();
    },
  };
}
