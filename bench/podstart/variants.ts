/**
 * The kinds of pod whose start-up bench/podstart compares. A variant makes
 * its networks once (setup), then describes each measured pod; teardown runs
 * after its pods are gone.
 */
import { claimFields, claimTemplateFor, createStandInNics, deviceClassFor, E2eAgent, waitForPublished } from "../../test/e2e/agent.ts";
import {
  apply,
  busyboxPod,
  createHostVeth,
  deleteNetwork,
  deleteObjects,
  macvlanNetwork,
  uniqueName,
  type Manifest,
} from "../../test/e2e/harness.ts";

export interface Variant {
  /** Short, stable name: it prefixes the JSON keys (`<name>_ready_p50_ms`, `<name>_started_p99_ms`, ...). */
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
      // Room for every pod of the run, warm-up included, although each is deleted once
      // measured: host-local hands addresses out round-robin, so the range never wraps.
      const last = 100 + pods + 10;
      if (last > 199) throw new RangeError(`${String(pods)} pods do not fit the bench's macvlan range 198.51.100.100-199`);
      await apply(macvlanNetwork(network, master.name, { subnet: "198.51.100.0/24", rangeStart: "198.51.100.100", rangeEnd: `198.51.100.${String(last)}` }));
    },
    pod: (name, labels) => busyboxPod({ name, labels, networks: [network] }),
    async teardown() {
      await deleteNetwork(network);
      await removeMaster?.();
    },
  };
}

/**
 * netclaim on the node: one agent publishing `devices` stand-in NICs (veths
 * whose far ends wait in a namespace of their own), a DeviceClass and a claim template that names
 * the interface. Shared by the "dra" and "both" variants; since each pod is
 * deleted once measured, a few devices serve the whole run.
 */
export class NetclaimSetup {
  readonly deviceClass = uniqueName("bench-netclaim");
  readonly template = uniqueName("bench-nic");
  #nics: { remove(): Promise<void> } | undefined;
  #agent: E2eAgent | undefined;
  #refs = 0;

  readonly devices: number;
  /** The claim template's NetworkConfig body. */
  readonly config: Record<string, unknown>;

  constructor(devices: number, config: Record<string, unknown> = { interface: { name: "data0", mtu: 9000 } }) {
    this.devices = devices;
    this.config = config;
  }

  async acquire(): Promise<void> {
    if (this.#refs++ > 0) return;
    const names = Array.from({ length: this.devices }, (_, i) => `ncb${String(i).padStart(3, "0")}`);
    this.#nics = await createStandInNics(names, "ncb-wires");
    this.#agent = await E2eAgent.start({ nicGlob: "ncb[0-9][0-9][0-9]" });
    await apply(deviceClassFor(this.deviceClass, "ncb"), claimTemplateFor(this.template, this.deviceClass, this.config));
    await waitForPublished("ncb", this.devices);
  }

  /** Pod spec fields for one netclaim interface. */
  podFields(): { spec: Record<string, unknown>; container: Record<string, unknown> } {
    return claimFields(this.template);
  }

  async release(): Promise<void> {
    if (--this.#refs > 0) return;
    await deleteObjects("resourceclaimtemplates.resource.k8s.io", [this.template]);
    await deleteObjects("deviceclasses.resource.k8s.io", [this.deviceClass], "");
    await this.#agent?.remove();
    await this.#nics?.remove();
  }
}

/** One netclaim DRA interface. */
export function draVariant(netclaim: NetclaimSetup): Variant {
  return {
    name: "dra",
    setup: () => netclaim.acquire(),
    pod: (name, labels) => busyboxPod({ name, labels, ...netclaim.podFields() }),
    teardown: () => netclaim.release(),
  };
}

/** One Multus macvlan network and one netclaim DRA interface. */
export function bothVariant(netclaim: NetclaimSetup, pods: number): Variant {
  const network = uniqueName("bench-both");
  let removeMaster: (() => Promise<void>) | undefined;
  return {
    name: "both",
    async setup() {
      await netclaim.acquire();
      const master = await createHostVeth(uniqueName("benchb"));
      removeMaster = () => master.remove();
      const last = 150 + pods + 10;
      if (last > 249) throw new RangeError(`${String(pods)} pods do not fit the bench's range 198.51.100.150-249`);
      await apply(macvlanNetwork(network, master.name, { subnet: "198.51.100.0/24", rangeStart: "198.51.100.150", rangeEnd: `198.51.100.${String(last)}` }));
    },
    pod: (name, labels) => busyboxPod({ name, labels, networks: [network], ...netclaim.podFields() }),
    async teardown() {
      await deleteNetwork(network);
      await removeMaster?.();
      await netclaim.release();
    },
  };
}
