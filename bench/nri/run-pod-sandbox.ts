/**
 * RunPodSandbox round trip through the real NRI runtime code (the v0.12 Go
 * peer on containerd/nri pkg/adaptation) into a plugin with a no-op handler:
 * netclaim's TypeScript plugin vs a Go plugin on containerd/nri pkg/stub, each
 * in its own process, measured alternately in the same run. The runtime peer
 * times each call; we report the median over rounds of each round's p50/p99.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { goPeer, RuntimePeer, removeDir, shortTempDir } from "../../test/nri/runtime-peer.ts";

const ROUNDS = 3;
const N = 5000;
const WARMUP = 500;

interface RoundResult {
  n: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

const noopPlugin = fileURLToPath(new URL("noop-plugin.ts", import.meta.url));
const goStub = goPeer("test/peers/nri-stub", "nri-stub");

const subjects: Record<string, (socket: string) => ChildProcess> = {
  ours: (socket) => spawn(process.execPath, [noopPlugin, socket], { stdio: "inherit" }),
  go: (socket) => spawn(goStub, ["-socket", socket], { stdio: ["ignore", "ignore", "ignore"] }),
};

async function round(subject: string): Promise<RoundResult> {
  const dir = shortTempDir();
  const peer = await RuntimePeer.start("v0.12", dir);
  const plugin = subjects[subject]!(peer.socketPath);
  try {
    await peer.nextEvent("sync");
    return (await peer.command("bench", { n: N, warmup: WARMUP })) as RoundResult;
  } finally {
    await peer.stop();
    plugin.kill();
    removeDir(dir);
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results: Record<string, RoundResult[]> = { ours: [], go: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const subject of ["ours", "go"]) {
    const result = await round(subject);
    results[subject]!.push(result);
    console.log(`round ${r + 1} ${subject.padEnd(4)} n=${result.n} p50=${result.p50_ms.toFixed(3)} ms p99=${result.p99_ms.toFixed(3)} ms max=${result.max_ms.toFixed(3)} ms`);
  }
}
const ours = { p50: median(results.ours!.map((x) => x.p50_ms)), p99: median(results.ours!.map((x) => x.p99_ms)) };
const go = { p50: median(results.go!.map((x) => x.p50_ms)), p99: median(results.go!.map((x) => x.p99_ms)) };
const round3 = (x: number): number => Math.round(x * 1000) / 1000;
console.log(`median of ${ROUNDS} rounds: ours p50=${ours.p50.toFixed(3)} ms p99=${ours.p99.toFixed(3)} ms; go stub p50=${go.p50.toFixed(3)} ms p99=${go.p99.toFixed(3)} ms`);
console.log(
  JSON.stringify({
    bench: "nri-run-pod-sandbox",
    rounds: ROUNDS,
    n: N,
    ours_p50_ms: round3(ours.p50),
    ours_p99_ms: round3(ours.p99),
    go_p50_ms: round3(go.p50),
    go_p99_ms: round3(go.p99),
    ratio_p50: round3(ours.p50 / go.p50),
    p99_ms: round3(ours.p99),
  }),
);
