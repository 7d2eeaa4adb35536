import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { burnCpu } from "../common/testdata/burn-cpu.ts";
import { EventLoopBusy } from "./event-loop-busy.ts";

describe("EventLoopBusy", () => {
  const busy = EventLoopBusy.start();
  after(() => {
    busy.stop();
  });

  it("reports a task that held the event loop for 60 ms of CPU", () => {
    busy.takeMax();
    burnCpu(60);
    assert.ok(busy.takeMax() >= 0.06, "the whole task falls between two ticks");
  });

  it("does not count time the loop spent waiting, and starts a new stretch at each read", async () => {
    burnCpu(60);
    busy.takeMax();
    await sleep(100);
    assert.ok(busy.takeMax() < 0.02, "ten idle ticks of 10 ms use microseconds each");
  });
});
