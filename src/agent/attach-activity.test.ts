import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AttachActivity } from "./attach-activity.ts";
import { settled } from "../common/testdata/settled.ts";

describe("AttachActivity", () => {
  it("is quiet at once with nothing under way", async () => {
    assert.equal(await settled(new AttachActivity().quiet()), true);
  });

  it("is quiet once the last pod start settles, a failed one too", async () => {
    const activity = new AttachActivity();
    let finishFirst = (): void => undefined;
    let failSecond = (_err: Error): void => undefined;
    const first = activity.track(() => new Promise<void>((resolve) => (finishFirst = resolve)));
    const second = activity.track(() => new Promise<void>((_resolve, reject) => (failSecond = reject)));
    const quiet = activity.quiet(60_000);
    finishFirst();
    await first;
    assert.equal(await settled(quiet), false, "one start still under way");
    failSecond(new Error("attach failed"));
    await assert.rejects(second, /attach failed/);
    assert.equal(await settled(quiet), true);
  });

  it("stops waiting after the longest wait, so background work is never starved", async () => {
    const activity = new AttachActivity();
    void activity.track(() => new Promise<void>(() => undefined));
    const started = performance.now();
    await activity.quiet(20);
    assert.ok(performance.now() - started >= 19);
  });
});
