import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KubeApiError, type RequestOptions } from "../kube/index.ts";
import { checkApi, clockSkew, type ApiCheckOptions, type DoctorApi } from "./api.ts";
import { AGENT_PERMISSIONS } from "./permissions.ts";

const signal = new AbortController().signal;
const NOW = Date.parse("2026-12-06T21:00:00.000Z");

interface Review {
  spec: { resourceAttributes: { group: string; resource: string; subresource?: string; verb: string; name?: string } };
}

/** An API server that serves `versions` of resource.k8s.io and allows what `allowed` says. */
function fakeApi(options: { versions?: readonly string[]; allowed?: (attributes: Review["spec"]["resourceAttributes"]) => boolean; date?: string } = {}): DoctorApi & { reviews: Review[] } {
  const reviews: Review[] = [];
  return {
    reviews,
    request<T>(method: string, path: string, request: RequestOptions = {}): Promise<T> {
      const answer = (body: unknown): Promise<T> => {
        request.onHeaders?.({ date: options.date ?? new Date(NOW).toUTCString() });
        return Promise.resolve(body as T);
      };
      if (method === "GET" && path === "/version") return answer({ gitVersion: "v1.37.2" });
      if (method === "GET" && path === "/apis/resource.k8s.io") {
        const versions = options.versions ?? ["v1", "v1beta2", "v1beta1"];
        if (versions.length === 0) return Promise.reject(new KubeApiError("KUBE_API", { method, path, status: 404, reason: "NotFound", message: "the server could not find the requested resource" }));
        return answer({ versions: versions.map((version) => ({ groupVersion: `resource.k8s.io/${version}`, version })) });
      }
      if (method === "POST" && path === "/apis/authentication.k8s.io/v1/selfsubjectreviews") return answer({ status: { userInfo: { username: "system:serviceaccount:netclaim:netclaim-agent" } } });
      if (method === "POST" && path === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") {
        const review = request.body as Review;
        reviews.push(review);
        return answer({ status: { allowed: options.allowed?.(review.spec.resourceAttributes) ?? true } });
      }
      return Promise.reject(new Error(`unexpected ${method} ${path}`));
    },
  };
}

function options(api: DoctorApi, more: Partial<ApiCheckOptions> = {}): ApiCheckOptions {
  return { connect: () => Promise.resolve(api), driverName: "netclaim.dev", networkStatus: false, now: () => NOW, ...more };
}

describe("checkApi", () => {
  it("checkApi passes every check against a server that serves v1 and grants everything", async () => {
    const api = fakeApi();
    const results = await checkApi(options(api), signal);
    assert.deepEqual(results.map((r) => `${r.status} ${r.name}: ${r.message}`), [
      "PASS API server: reachable, Kubernetes v1.37.2",
      "PASS clock skew: the node's clock is within 0.5 s of the API server's",
      "PASS resource.k8s.io: served: v1, v1beta2, v1beta1; the agent uses v1",
      `PASS RBAC: system:serviceaccount:netclaim:netclaim-agent has all ${String(AGENT_PERMISSIONS.length - 1)} permissions the agent uses (networkStatus off: pods/status patch not needed)`,
    ]);
  });

  it("checkApi asks one SelfSubjectAccessReview per permission the agent uses, the driver's by name", async () => {
    const api = fakeApi();
    await checkApi(options(api, { networkStatus: true, driverName: "example.com" }), signal);
    assert.equal(api.reviews.length, AGENT_PERMISSIONS.length);
    assert.deepEqual(
      api.reviews.find((r) => r.spec.resourceAttributes.subresource === "driver")?.spec.resourceAttributes,
      { group: "resource.k8s.io", resource: "resourceclaims", subresource: "driver", verb: "associated-node:patch", name: "example.com" },
    );
    assert.ok(api.reviews.some((r) => r.spec.resourceAttributes.resource === "pods" && r.spec.resourceAttributes.verb === "patch"));
  });

  it("checkApi fails naming each verb and resource RBAC denies", async () => {
    const api = fakeApi({ allowed: (a) => !(a.resource === "resourceslices" && a.verb === "delete") && !(a.subresource === "status" && a.verb === "patch") });
    const denied = (await checkApi(options(api), signal)).filter((r) => r.status === "FAIL");
    assert.deepEqual(denied.map((r) => r.message), [
      "system:serviceaccount:netclaim:netclaim-agent may not delete resourceslices (resource.k8s.io): the agent cannot delete ResourceSlices: a shrinking pool keeps stale slices",
      "system:serviceaccount:netclaim:netclaim-agent may not patch resourceclaims/status (resource.k8s.io): the agent cannot write claim status (networkData, conditions): claims never show their interfaces",
    ]);
    assert.match(denied[0]?.fix ?? "", /^grant "delete" on resourceslices: apply deploy\/base\/rbac.yaml again/);
  });

  it("checkApi fails when resource.k8s.io/v1 is not served", async () => {
    const beta = (await checkApi(options(fakeApi({ versions: ["v1beta1"] })), signal)).find((r) => r.name === "resource.k8s.io");
    assert.equal(beta?.status, "FAIL");
    assert.equal(beta.message, "served: v1beta1; not v1, the version the agent uses");
    const none = (await checkApi(options(fakeApi({ versions: [] })), signal)).find((r) => r.name === "resource.k8s.io");
    assert.equal(none?.message, "the API server serves no version of resource.k8s.io: DRA is off");
  });

  it("checkApi stops at an API server it cannot reach or credentials it does not have", async () => {
    const unreachable: DoctorApi = { request: () => Promise.reject(new KubeApiError("KUBE_TRANSPORT", { method: "GET", path: "/version", status: 0, reason: "", message: "connect ECONNREFUSED 10.96.0.1:443" })) };
    const results = await checkApi(options(unreachable), signal);
    assert.deepEqual(results.map((r) => [r.status, r.message]), [["FAIL", "cannot reach the API server: GET /version: connect ECONNREFUSED 10.96.0.1:443"]]);
    const noCredentials = await checkApi(options(unreachable, { connect: () => Promise.reject(new Error("not in a pod")) }), signal);
    assert.deepEqual(noCredentials.map((r) => [r.status, r.message]), [["FAIL", "no credentials: not in a pod"]]);
  });
});

describe("clockSkew", () => {
  it("clockSkew warns when the node's clock is more than the limit off the server's Date", () => {
    const date = new Date(NOW).toUTCString();
    assert.equal(clockSkew(date, NOW + 3_000, 5_000).status, "PASS");
    const ahead = clockSkew(date, NOW + 12_500, 5_000);
    assert.equal(ahead.status, "WARN");
    assert.equal(ahead.message, "the node's clock is 12.0 s ahead of the API server's");
    assert.equal(clockSkew(date, NOW - 9_500, 5_000).message, "the node's clock is 10.0 s behind the API server's");
    assert.equal(clockSkew(undefined, NOW, 5_000).status, "PASS");
  });
});
