/**
 * The API server as the agent sees it: reachable with the agent's
 * credentials, serving the resource.k8s.io version the agent uses, granting
 * every permission the agent uses (SelfSubjectAccessReview, which every
 * authenticated user may create), and telling the time (its Date header)
 * close to the node's.
 */
import type { IncomingHttpHeaders } from "node:http";
import { errorMessage } from "../common/errors.ts";
import { RESOURCE_SLICES_PATH, isNotFound, type RequestOptions } from "../kube/index.ts";
import { fail, pass, warn, type Check, type CheckResult } from "./check.ts";
import { AGENT_PERMISSIONS, describePermission, type AgentPermission } from "./permissions.ts";

export const API_CHECK = "API server";
export const CLOCK_CHECK = "clock skew";
export const RESOURCE_API_CHECK = "resource.k8s.io";
export const RBAC_CHECK = "RBAC";

/** What the checks ask of the API client (KubeClient). */
export interface DoctorApi {
  request<T>(method: string, path: string, options?: RequestOptions): Promise<T>;
}

export interface ApiCheckOptions {
  /** Loads the credentials and makes the client; throws when there are none. */
  readonly connect: () => Promise<DoctorApi>;
  readonly driverName: string;
  /** The AgentConfig's networkStatus.enabled: the opt-in needs two permissions more. */
  readonly networkStatus: boolean;
  /** Default Date.now. */
  readonly now?: () => number;
  /** Default 5 s. */
  readonly maxSkewMs?: number;
}

/** "resource.k8s.io/v1": the group version of every resource.k8s.io path the agent uses. */
const [, , RESOURCE_GROUP = "resource.k8s.io", AGENT_RESOURCE_VERSION = "v1"] = RESOURCE_SLICES_PATH.split("/");

export function apiChecks(options: ApiCheckOptions): Check[] {
  return [{ name: API_CHECK, run: (signal) => checkApi(options, signal) }];
}

/** One check, several results: nothing after an unreachable API server could say anything. */
export async function checkApi(options: ApiCheckOptions, signal: AbortSignal): Promise<CheckResult[]> {
  let api: DoctorApi;
  try {
    api = await options.connect();
  } catch (err) {
    return [fail(API_CHECK, `no credentials: ${errorMessage(err)}`, "run doctor in the agent's pod (kubectl exec ds/netclaim-agent -- netclaim doctor), which has the agent's service account, or pass --kubeconfig")];
  }
  const now = options.now ?? Date.now;
  let date: string | undefined;
  const sent = now();
  let version: { gitVersion?: unknown };
  try {
    version = await api.request<{ gitVersion?: unknown }>("GET", "/version", { signal, onHeaders: (headers: IncomingHttpHeaders) => (date = headers.date) });
  } catch (err) {
    return [fail(API_CHECK, `cannot reach the API server: ${errorMessage(err)}`, "check that the node reaches the API server (KUBERNETES_SERVICE_HOST in the pod, the server in --kubeconfig) and that its certificate is trusted")];
  }
  const received = now();
  return [
    pass(API_CHECK, `reachable, Kubernetes ${typeof version.gitVersion === "string" ? version.gitVersion : "(version unknown)"}`),
    clockSkew(date, (sent + received) / 2, options.maxSkewMs),
    await resourceApi(api, signal),
    ...(await rbac(api, options, signal)),
  ];
}

/** The Date header has whole seconds: the server's time lay within the second after it. */
export function clockSkew(date: string | undefined, localMs: number, maxSkewMs = 5_000): CheckResult {
  const serverMs = date === undefined ? Number.NaN : Date.parse(date) + 500;
  if (Number.isNaN(serverMs)) return pass(CLOCK_CHECK, "not measured: the API server's answer had no Date header");
  const skewMs = localMs - serverMs;
  const seconds = (Math.abs(skewMs) / 1000).toFixed(1);
  if (Math.abs(skewMs) <= maxSkewMs) return pass(CLOCK_CHECK, `the node's clock is within ${seconds} s of the API server's`);
  return warn(
    CLOCK_CHECK,
    `the node's clock is ${seconds} s ${skewMs > 0 ? "ahead of" : "behind"} the API server's`,
    "synchronise the node's clock (chrony, systemd-timesyncd): token expiry and claim status times depend on it",
  );
}

async function resourceApi(api: DoctorApi, signal: AbortSignal): Promise<CheckResult> {
  const wanted = `${RESOURCE_GROUP}/${AGENT_RESOURCE_VERSION}`;
  let served: string[];
  try {
    const group = await api.request<{ versions?: { version?: unknown }[] }>("GET", `/apis/${RESOURCE_GROUP}`, { signal });
    served = (group.versions ?? []).flatMap((v) => (typeof v.version === "string" ? [v.version] : []));
  } catch (err) {
    if (!isNotFound(err)) return fail(RESOURCE_API_CHECK, `cannot read the served versions: ${errorMessage(err)}`, "check the API server's health (kubectl get --raw /readyz)");
    served = [];
  }
  const upgrade = `netclaim needs ${wanted} (Kubernetes 1.34+, served by default; docs/compatibility.md)`;
  if (served.length === 0) return fail(RESOURCE_API_CHECK, `the API server serves no version of ${RESOURCE_GROUP}: DRA is off`, upgrade);
  if (!served.includes(AGENT_RESOURCE_VERSION)) return fail(RESOURCE_API_CHECK, `served: ${served.join(", ")}; not ${AGENT_RESOURCE_VERSION}, the version the agent uses`, upgrade);
  return pass(RESOURCE_API_CHECK, `served: ${served.join(", ")}; the agent uses ${AGENT_RESOURCE_VERSION}`);
}

interface AccessReview {
  status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string };
}

async function rbac(api: DoctorApi, options: ApiCheckOptions, signal: AbortSignal): Promise<CheckResult[]> {
  const needed = AGENT_PERMISSIONS.filter((p) => p.when === undefined || options.networkStatus);
  const user = await whoAmI(api, signal);
  const as = user === undefined ? "the agent's credentials" : user;
  const denied: CheckResult[] = [];
  for (const permission of needed) {
    let review: AccessReview;
    try {
      review = await api.request<AccessReview>("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", { body: accessReview(permission, options.driverName), signal });
    } catch (err) {
      return [fail(RBAC_CHECK, `cannot ask whether ${as} may ${describePermission(permission)}: ${errorMessage(err)}`, "check the API server's health; SelfSubjectAccessReview is open to every authenticated user")];
    }
    if (review.status?.allowed === true) continue;
    const reason = review.status?.reason ?? review.status?.evaluationError;
    denied.push(
      fail(
        RBAC_CHECK,
        `${as} may not ${describePermission(permission)}${reason === undefined || reason === "" ? "" : ` (${reason})`}: the agent cannot ${permission.why}`,
        `grant "${permission.verb}" on ${permission.subresource === undefined ? permission.resource : `${permission.resource}/${permission.subresource}`}: apply ${permission.when === "networkStatus" ? "deploy/components/network-status" : "deploy/base/rbac.yaml"} again (or upgrade the Helm release), and make sure the ClusterRoleBinding names the agent's ServiceAccount`,
      ),
    );
  }
  if (denied.length > 0) return denied;
  const optIn = options.networkStatus ? "" : " (networkStatus off: pods/status patch not needed)";
  return [pass(RBAC_CHECK, `${as} has all ${String(needed.length)} permissions the agent uses${optIn}`)];
}

function accessReview(permission: AgentPermission, driverName: string): unknown {
  return {
    apiVersion: "authorization.k8s.io/v1",
    kind: "SelfSubjectAccessReview",
    spec: {
      resourceAttributes: {
        group: permission.group,
        resource: permission.resource,
        verb: permission.verb,
        ...(permission.subresource !== undefined && { subresource: permission.subresource }),
        ...(permission.name === "driverName" && { name: driverName }),
      },
    },
  };
}

/** The user the API server takes the credentials for (SelfSubjectReview, 1.28+); undefined when it will not say. */
async function whoAmI(api: DoctorApi, signal: AbortSignal): Promise<string | undefined> {
  try {
    const review = await api.request<{ status?: { userInfo?: { username?: unknown } } }>("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
      body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
      signal,
    });
    const name = review.status?.userInfo?.username;
    return typeof name === "string" ? name : undefined;
  } catch {
    return undefined; // Only for the message: the access reviews say what matters.
  }
}
