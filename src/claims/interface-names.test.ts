import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { assignInterfaceNames, type NamingInput } from "./interface-names.ts";

function input(claim: string, request: string, device: string, requestedName?: string): NamingInput {
  return { claim, request, device, requestedName };
}

function namesOf(inputs: NamingInput[], existing: string[] = []): string[] {
  const result = assignInterfaceNames(inputs, new Map(existing.map((name) => [name, "an interface already in the pod"])));
  if (!result.ok) assert.fail(result.message);
  return inputs.map((i) => result.names.get(i) ?? "?");
}

describe("assignInterfaceNames", () => {
  it("names devices nc0, nc1, ... by claim, request and device, whatever the input order", () => {
    const a = input("default/a", "nic", "pci-0000-03-00-0");
    const b = input("default/b", "nic", "pci-0000-02-00-0");
    const a2 = input("default/a", "nic", "pci-0000-04-00-0");
    assert.deepEqual(namesOf([b, a2, a]), ["nc2", "nc1", "nc0"]);
    assert.deepEqual(namesOf([a, a2, b]), ["nc0", "nc1", "nc2"]);
  });

  it("keeps requested names and skips them and the pod's own interfaces for defaults", () => {
    const fixed = input("default/a", "nic", "d1", "nc0");
    const free = input("default/b", "nic", "d2");
    assert.deepEqual(namesOf([fixed, free], ["eth0", "net1", "nc1"]), ["nc0", "nc2"]);
  });

  it("never gives a default name that looks like Multus's netN or eth0", () => {
    const names = namesOf(Array.from({ length: 12 }, (_, i) => input("ns/c", "r", `d${String(i).padStart(2, "0")}`)), ["eth0", "net1", "net2"]);
    assert.ok(names.every((n) => /^nc\d+$/.test(n)));
  });

  it("refuses a requested name already in the pod, naming both sides", () => {
    const existing = new Map([["eth0", "an interface already in the pod"], ["net1", "Multus network default/macvlan-a"]]);
    const result = assignInterfaceNames([input("default/a", "nic", "pci-0000-03-00-0", "net1")], existing);
    if (result.ok) assert.fail("expected a collision");
    assert.match(result.message, /device pci-0000-03-00-0 \(claim default\/a, request nic\) "net1".*already used by Multus network default\/macvlan-a$/);
    assert.equal(result.name, "net1");
  });

  it("refuses two devices asking for the same name", () => {
    const result = assignInterfaceNames([input("ns/a", "r", "d1", "data"), input("ns/b", "r", "d2", "data")], new Map());
    if (result.ok) assert.fail("expected a collision");
    assert.match(result.message, /device d2 .*"data".*used by device d1/);
  });
});
