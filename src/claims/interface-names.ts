/**
 * Pod-side interface names. A device whose config names its interface gets
 * that name; the others get `nc0`, `nc1`, ... in a fixed order (claim, then
 * request, then device), so a pod's interfaces are named the same on every
 * node and every restart, and never take Multus's `netN` names or `eth0`.
 */
export const DEFAULT_NAME_PREFIX = "nc";

export interface NamingInput {
  /** Stable identity used for ordering: claim namespace/name, request, device. */
  claim: string;
  request: string;
  device: string;
  /** The name the merged NetworkConfig asks for, if any. */
  requestedName?: string | undefined;
}

export type NamingResult =
  | { ok: true; names: Map<NamingInput, string> }
  | { ok: false; message: string; /** The name asked for twice. */ name: string };

export function compareNamingInputs(a: NamingInput, b: NamingInput): number {
  return compare(a.claim, b.claim) || compare(a.request, b.request) || compare(a.device, b.device);
}

/**
 * Assigns every device of one pod a name. `existing` maps the names already
 * in the pod (eth0, Multus's net1, ...) to what has them ("Multus network
 * default/macvlan-a"): asking for one of them is an error naming both sides,
 * and default names skip them.
 */
export function assignInterfaceNames(inputs: readonly NamingInput[], existing: ReadonlyMap<string, string>): NamingResult {
  const ordered = [...inputs].sort(compareNamingInputs);
  const names = new Map<NamingInput, string>();
  const taken = new Map(existing);
  for (const input of ordered) {
    if (input.requestedName === undefined) continue;
    const owner = taken.get(input.requestedName);
    if (owner !== undefined) {
      return {
        ok: false,
        message: `Cannot name device ${input.device} (claim ${input.claim}, request ${input.request}) "${input.requestedName}" in the pod: the name is already used by ${owner}`,
        name: input.requestedName,
      };
    }
    taken.set(input.requestedName, `device ${input.device} (claim ${input.claim}, request ${input.request})`);
    names.set(input, input.requestedName);
  }
  let next = 0;
  for (const input of ordered) {
    if (names.has(input)) continue;
    while (taken.has(`${DEFAULT_NAME_PREFIX}${next}`)) next++;
    const name = `${DEFAULT_NAME_PREFIX}${next}`;
    taken.set(name, `device ${input.device}`);
    names.set(input, name);
  }
  return { ok: true, names };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
