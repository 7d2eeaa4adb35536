/**
 * Where a process's anonymous memory grew, from two reads of
 * /proc/<pid>/smaps: the bench's answer to "RSS grew but no V8 heap did".
 *
 * Mappings are matched by start address and sorted into the kinds that tell
 * the allocators apart: glibc's main arena (`[heap]`, grown with brk), its
 * per-thread arenas (anonymous mappings at a 64 MiB boundary, glibc's
 * HEAP_MAX_SIZE on 64-bit), thread stacks, and the rest (V8's pages and code
 * space, large malloc blocks mapped on their own).
 */

export interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  name: string;
  anonymousKiB: number;
}

export type MappingKind = "main-arena" | "thread-arena" | "stack" | "file" | "other-anonymous";

const ARENA_ALIGNMENT = 64n * 2n ** 20n;

export function parseSmaps(text: string): Mapping[] {
  const mappings: Mapping[] = [];
  for (const line of text.split("\n")) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      mappings.push({ start: BigInt(`0x${header[1]!}`), end: BigInt(`0x${header[2]!}`), perms: header[3]!, name: header[4]!.trim(), anonymousKiB: 0 });
      continue;
    }
    const anonymous = /^Anonymous:\s+(\d+) kB$/.exec(line);
    const current = mappings.at(-1);
    if (anonymous && current) current.anonymousKiB = Number(anonymous[1]);
  }
  return mappings;
}

export function mappingKind(mapping: Mapping): MappingKind {
  if (mapping.name === "[heap]") return "main-arena";
  if (mapping.name.startsWith("[stack")) return "stack";
  if (mapping.name.startsWith("/")) return "file";
  if (mapping.name === "" && mapping.start % ARENA_ALIGNMENT === 0n && mapping.end - mapping.start <= ARENA_ALIGNMENT) return "thread-arena";
  return "other-anonymous";
}

export interface SmapsGrowth {
  /** Anonymous KiB gained (or, negative, lost) per kind. */
  byKind: Record<MappingKind, number>;
  /** The mappings that changed most, largest change first. */
  largest: { kind: MappingKind; address: string; sizeKiB: number; perms: string; name: string; beforeKiB: number; afterKiB: number }[];
}

export function smapsGrowth(before: readonly Mapping[], after: readonly Mapping[], top = 12): SmapsGrowth {
  const byKind: Record<MappingKind, number> = { "main-arena": 0, "thread-arena": 0, stack: 0, file: 0, "other-anonymous": 0 };
  const beforeByStart = new Map(before.map((m) => [m.start, m]));
  const afterStarts = new Set(after.map((m) => m.start));
  const changes = [
    ...after.map((m) => ({ mapping: m, beforeKiB: beforeByStart.get(m.start)?.anonymousKiB ?? 0, afterKiB: m.anonymousKiB })),
    ...before.filter((m) => !afterStarts.has(m.start)).map((m) => ({ mapping: m, beforeKiB: m.anonymousKiB, afterKiB: 0 })),
  ];
  for (const change of changes) byKind[mappingKind(change.mapping)] += change.afterKiB - change.beforeKiB;
  const largest = changes
    .filter((c) => c.afterKiB !== c.beforeKiB)
    .sort((a, b) => Math.abs(b.afterKiB - b.beforeKiB) - Math.abs(a.afterKiB - a.beforeKiB))
    .slice(0, top)
    .map(({ mapping, beforeKiB, afterKiB }) => ({
      kind: mappingKind(mapping),
      address: `0x${mapping.start.toString(16)}`,
      sizeKiB: Number((mapping.end - mapping.start) / 1024n),
      perms: mapping.perms,
      name: mapping.name,
      beforeKiB,
      afterKiB,
    }));
  return { byKind, largest };
}
