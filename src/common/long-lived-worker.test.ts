import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { LONG_LIVED_YOUNG_GENERATION_MB, startLongLivedWorker } from "./long-lived-worker.ts";

// Allocates like a busy thread whose allocations mostly die young, some surviving a while,
// and reports the young generation's size (V8's new space) after it.
const CHURN = new URL(
  `data:text/javascript,${encodeURIComponent(`
    import { parentPort } from "node:worker_threads";
    import v8 from "node:v8";
    const kept = [];
    for (let i = 0; i < 2e6; i++) {
      const o = { i, s: "x" + i };
      if (i % 20 === 0) kept.push(o);
      if (kept.length > 50000) kept.splice(0, 25000);
    }
    parentPort.postMessage(v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size);
  `)}`,
);

async function youngGenerationAfterChurn(worker: Worker): Promise<number> {
  try {
    const [bytes] = (await once(worker, "message")) as [number];
    return bytes / 2 ** 20;
  } finally {
    await worker.terminate();
  }
}

describe("startLongLivedWorker", () => {
  it("keeps a busy thread's young generation at its cap, where V8 alone grows it", async () => {
    const capped = await youngGenerationAfterChurn(startLongLivedWorker(CHURN));
    const uncapped = await youngGenerationAfterChurn(new Worker(CHURN));
    assert.ok(capped <= LONG_LIVED_YOUNG_GENERATION_MB, `young generation ${capped} MiB, cap ${LONG_LIVED_YOUNG_GENERATION_MB} MiB`);
    // The baseline: without the cap the same work grows it, or this test proves nothing.
    assert.ok(uncapped > capped, `uncapped ${uncapped} MiB, capped ${capped} MiB`);
  });
});
