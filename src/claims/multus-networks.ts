/**
 * The interfaces Multus gives a pod, read from the pod's
 * `k8s.v1.cni.cncf.io/networks` annotation, so that a netclaim interface
 * whose name clashes with one can say which network has it ("Multus network
 * default/macvlan-a as net1") rather than only that the name is taken.
 *
 * Both of the annotation's forms are read: the comma-separated list
 * (`name`, `namespace/name`, either with `@interface`) and the JSON list of
 * `{name, namespace?, interface?}`. Multus names an interface that the
 * annotation does not name `net<position>`, counting every network of the
 * list from 1. An annotation that does not parse names nothing here: Multus
 * refuses such a pod itself.
 */
import { z } from "zod";

export const MULTUS_NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks";

const jsonSelectionSchema = z.array(z.looseObject({ name: z.string().min(1), namespace: z.string().min(1).optional(), interface: z.string().min(1).optional() }));

interface Selection {
  namespace: string;
  name: string;
  interface?: string | undefined;
}

/** Interface name → "Multus network <namespace>/<name>", for the networks a pod's annotations ask for. */
/** What to do when a claim's interface name is one the pod's Multus annotation gives a network. */
export const MULTUS_RENAME_HINT =
  `rename one of them: the interface.name in the claim's NetworkConfig, or the Multus network's interface in the annotation ("<network>@<name>", or "interface" in its JSON form)`;

export function multusInterfaceOwners(annotations: Readonly<Record<string, string>>, podNamespace: string): Map<string, string> {
  const owners = new Map<string, string>();
  const value = annotations[MULTUS_NETWORKS_ANNOTATION]?.trim();
  if (value === undefined || value === "") return owners;
  const selections = value.startsWith("[") ? fromJson(value, podNamespace) : fromList(value, podNamespace);
  selections.forEach((selection, index) => {
    owners.set(selection.interface ?? `net${String(index + 1)}`, `Multus network ${selection.namespace}/${selection.name}`);
  });
  return owners;
}

function fromJson(value: string, podNamespace: string): Selection[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return [];
  }
  const result = jsonSelectionSchema.safeParse(parsed);
  if (!result.success) return [];
  return result.data.map((s) => ({ namespace: s.namespace ?? podNamespace, name: s.name, interface: s.interface }));
}

function fromList(value: string, podNamespace: string): Selection[] {
  return value.split(",").map((entry) => {
    const trimmed = entry.trim();
    const at = trimmed.lastIndexOf("@");
    const reference = at < 0 ? trimmed : trimmed.slice(0, at);
    const ifName = at < 0 ? undefined : trimmed.slice(at + 1);
    const slash = reference.indexOf("/");
    return {
      namespace: slash < 0 ? podNamespace : reference.slice(0, slash),
      name: slash < 0 ? reference : reference.slice(slash + 1),
      interface: ifName === "" ? undefined : ifName,
    };
  });
}
