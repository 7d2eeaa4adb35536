/**
 * NodePrepareResources through the kubelet's own DRA client (the Go kubelet
 * peer) into netclaim's DRA plugin with the trivial AllocationPreparer, so
 * what is measured is the DRA layer itself: lock, claim read, two fsynced
 * state writes, answer. Baseline in the same run: re-prepare of a claim
 * already prepared (lock and one state read, no writes). Each figure is the
 * median over rounds of per-round medians; times include the peer's stdio.
 */
import { mkdir } from "node:fs/promises";
import { pino } from "pino";
import { AllocationPreparer, DraPlugin, type ClaimContent } from "../../src/dra/index.ts";
import { StateStore } from "../../src/store/index.ts";
import { allocatedClaim, DRIVER, refOf } from "../../test/dra/fixtures.ts";
import { removeDirs, testDirs } from "../../test/dra/harness.ts";
import { KubeletPeer } from "../../test/dra/kubelet-peer.ts";

const ROUNDS = 3;
const N = 200;
const CONCURRENCY = 16;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

interface Round {
  reprepare_ms: number;
  prepare_ms: number;
  unprepare_ms: number;
  concurrent_claims_per_s: number;
}

async function round(r: number): Promise<Round> {
  const dirs = testDirs();
  await mkdir(dirs.registryDir, { recursive: true });
  const claims = new Map<string, ClaimContent>();
  for (let i = 0; i < 2 * N; i++) {
    const claim = allocatedClaim(`bench-${r}-${i}`, 2);
    claims.set(claim.ref.uid, claim);
  }
  const peer = await KubeletPeer.start(dirs.registryDir, { health: false });
  const plugin = await DraPlugin.start({
    driver: DRIVER,
    kubeletRootDir: dirs.kubeletRootDir,
    store: await StateStore.open(dirs.stateDir),
    claimSource: { get: (ref) => Promise.resolve(claims.get(ref.uid)!) },
    preparer: new AllocationPreparer(),
    logger: pino({ level: "silent" }),
  });
  try {
    await peer.nextEvent("registered");
    const all = [...claims.values()].map(refOf);
    const sequential = all.slice(0, N);
    const concurrent = all.slice(N);
    const prepare: number[] = [];
    const reprepare: number[] = [];
    const unprepare: number[] = [];
    for (const claim of sequential) prepare.push(await timed(() => peer.prepare(DRIVER, [claim])));
    for (const claim of sequential) reprepare.push(await timed(() => peer.prepare(DRIVER, [claim])));
    for (const claim of sequential) unprepare.push(await timed(() => peer.unprepare(DRIVER, [claim])));
    let next = 0;
    const wall = await timed(async () => {
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < concurrent.length) await peer.prepare(DRIVER, [concurrent[next++]!]);
        }),
      );
    });
    return {
      reprepare_ms: median(reprepare),
      prepare_ms: median(prepare),
      unprepare_ms: median(unprepare),
      concurrent_claims_per_s: (concurrent.length / wall) * 1000,
    };
  } finally {
    await plugin.close();
    await peer.stop();
    removeDirs(dirs);
  }
}

const rounds: Round[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const result = await round(r);
  rounds.push(result);
  console.log(
    `round ${r + 1}: re-prepare p50=${result.reprepare_ms.toFixed(2)} ms, prepare p50=${result.prepare_ms.toFixed(2)} ms, ` +
      `unprepare p50=${result.unprepare_ms.toFixed(2)} ms, ${CONCURRENCY} in flight: ${result.concurrent_claims_per_s.toFixed(0)} claims/s`,
  );
}
const pick = (key: keyof Round): number => median(rounds.map((x) => x[key]));
const round2 = (x: number): number => Math.round(x * 100) / 100;
console.log(
  JSON.stringify({
    bench: "dra-prepare",
    rounds: ROUNDS,
    n: N,
    reprepare_p50_ms: round2(pick("reprepare_ms")),
    prepare_p50_ms: round2(pick("prepare_ms")),
    unprepare_p50_ms: round2(pick("unprepare_ms")),
    prepare_vs_reprepare: round2(pick("prepare_ms") / pick("reprepare_ms")),
    concurrent: CONCURRENCY,
    concurrent_claims_per_s: Math.round(pick("concurrent_claims_per_s")),
    sequential_claims_per_s: Math.round(1000 / pick("prepare_ms")),
  }),
);
