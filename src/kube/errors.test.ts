import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KubeApiError, unlessNotFound } from "./errors.ts";

const answer = (status: number) =>
  new KubeApiError("KUBE_API", { method: "GET", path: "/api/v1/namespaces/a/pods/p/status", status, reason: "", message: `status ${String(status)}` });

describe("unlessNotFound", () => {
  it("gives the answer, undefined for 404, and every other failure as it was", async () => {
    assert.equal(await unlessNotFound(Promise.resolve(7)), 7);
    const gone: Promise<number> = Promise.reject(answer(404));
    assert.equal(await unlessNotFound(gone), undefined);
    await assert.rejects(unlessNotFound(Promise.reject(answer(403))), /status 403/);
  });
});
