import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MULTUS_NETWORKS_ANNOTATION, multusInterfaceOwners } from "./multus-networks.ts";

const owners = (value: string | undefined): Record<string, string> =>
  Object.fromEntries(multusInterfaceOwners(value === undefined ? {} : { [MULTUS_NETWORKS_ANNOTATION]: value }, "team-a"));

describe("multusInterfaceOwners", () => {
  it("reads the comma-separated form: namespaces default to the pod's, unnamed interfaces are net<position>", () => {
    assert.deepEqual(owners("macvlan-a, infra/sriov-b@fast0, macvlan-c"), {
      net1: "Multus network team-a/macvlan-a",
      fast0: "Multus network infra/sriov-b",
      net3: "Multus network team-a/macvlan-c",
    });
  });

  it("reads the JSON form", () => {
    assert.deepEqual(owners('[{"name":"macvlan-a","namespace":"infra","interface":"data1"},{"name":"macvlan-b","ips":["198.51.100.5/24"]}]'), {
      data1: "Multus network infra/macvlan-a",
      net2: "Multus network team-a/macvlan-b",
    });
  });

  it("names nothing for a pod without the annotation, or with one Multus itself would refuse", () => {
    assert.deepEqual(owners(undefined), {});
    assert.deepEqual(owners("  "), {});
    assert.deepEqual(owners("[{]"), {});
    assert.deepEqual(owners('[{"namespace":"x"}]'), {});
  });
});
