/**
 * Where the API server is and how to prove who we are: a kubeconfig file or
 * the pod's service account.
 *
 * Read here rather than with @kubernetes/client-node's KubeConfig, whose
 * module loads the library's whole generated API: 24 MiB of V8 heap and
 * 77 MiB of RSS in an agent that uses none of it, on every node, and a larger
 * heap for every garbage collection to walk (docs/scale.md). What a node agent
 * needs is small: the server, its CA, and a client certificate or a bearer
 * token, the service account's re-read as the kubelet rotates it. Exec and
 * auth-provider plugins are refused, with what to use instead.
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { NetclaimError } from "../common/errors.ts";
import { firstIssue } from "../common/zod-issue.ts";

export interface ApiCredentials {
  /** The API server's base URL. */
  readonly server: URL;
  readonly tls: ClientTls;
  /** The Authorization header for a request about to be sent; undefined sends none. */
  authorization(): string | undefined;
}

export interface ClientTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** false only where the kubeconfig says insecure-skip-tls-verify. */
  rejectUnauthorized?: boolean;
  servername?: string;
}

export class CredentialsError extends NetclaimError<"KUBE_CREDENTIALS"> {
  constructor(message: string, options?: ErrorOptions) {
    super("KUBE_CREDENTIALS", message, options);
  }
}

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * How long a token read from a file is used before the file is read again:
 * client-go's figure. The kubelet rotates a projected token well before it
 * expires, so a minute-old copy is still valid.
 */
export const TOKEN_FILE_TTL_MS = 60_000;

export interface CredentialOptions {
  /** Milliseconds, for the token file's re-reads (tests). */
  now?: () => number;
}

/** The agent's credentials: the kubeconfig it was given, else its pod's service account. */
export function agentCredentials(kubeconfig: string | undefined): ApiCredentials {
  return kubeconfig === undefined ? inClusterCredentials() : kubeconfigCredentials(kubeconfig);
}

/** The pod's service account: the API server the kubelet told the pod of, its CA and the projected token. */
export function inClusterCredentials(options: CredentialOptions & { env?: NodeJS.ProcessEnv; dir?: string } = {}): ApiCredentials {
  const env = options.env ?? process.env;
  const host = env["KUBERNETES_SERVICE_HOST"];
  const port = env["KUBERNETES_SERVICE_PORT"];
  if (!host || !port) {
    throw new CredentialsError("Cannot find the API server: not in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set); give a kubeconfig with --kubeconfig or KUBECONFIG");
  }
  const dir = options.dir ?? SERVICE_ACCOUNT_DIR;
  const token = tokenFile(join(dir, "token"), "the service account's token", options.now);
  return {
    server: serverUrl(`https://${host.includes(":") ? `[${host}]` : host}:${port}`, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"),
    tls: { ca: readCredentialFile(join(dir, "ca.crt"), "the service account's CA") },
    authorization: () => `Bearer ${token()}`,
  };
}

const kubeconfigSchema = z.object({
  "current-context": z.string().optional(),
  clusters: z
    .array(
      z.object({
        name: z.string(),
        cluster: z.object({
          server: z.string().min(1),
          "certificate-authority": z.string().optional(),
          "certificate-authority-data": z.string().optional(),
          "insecure-skip-tls-verify": z.boolean().optional(),
          "tls-server-name": z.string().optional(),
          "proxy-url": z.string().optional(),
        }),
      }),
    )
    .nullish(),
  users: z
    .array(
      z.object({
        name: z.string(),
        user: z
          .object({
            "client-certificate": z.string().optional(),
            "client-certificate-data": z.string().optional(),
            "client-key": z.string().optional(),
            "client-key-data": z.string().optional(),
            token: z.string().optional(),
            tokenFile: z.string().optional(),
            exec: z.unknown().optional(),
            "auth-provider": z.unknown().optional(),
            username: z.string().optional(),
          })
          .nullish(),
      }),
    )
    .nullish(),
  contexts: z.array(z.object({ name: z.string(), context: z.object({ cluster: z.string(), user: z.string().optional() }) })).nullish(),
});

/**
 * The credentials of a kubeconfig file's current context. Relative paths in
 * it are relative to the file's directory, as kubectl reads them.
 */
export function kubeconfigCredentials(file: string, options: CredentialOptions = {}): ApiCredentials {
  const where = `kubeconfig ${file}`;
  let document: unknown;
  try {
    document = parseYaml(readFileSync(file, "utf8"));
  } catch (err) {
    throw new CredentialsError(`Cannot read ${where}: ${(err as Error).message}`, { cause: err });
  }
  const parsed = kubeconfigSchema.safeParse(document);
  if (!parsed.success) throw new CredentialsError(`Cannot use ${where}: ${firstIssue(parsed.error)}`);
  const config = parsed.data;
  const contextName = config["current-context"];
  if (!contextName) throw new CredentialsError(`Cannot use ${where}: it has no current-context; set one with kubectl config use-context`);
  const context = config.contexts?.find((c) => c.name === contextName)?.context;
  if (context === undefined) throw new CredentialsError(`Cannot use ${where}: its current-context "${contextName}" is not among its contexts`);
  const cluster = config.clusters?.find((c) => c.name === context.cluster)?.cluster;
  if (cluster === undefined) throw new CredentialsError(`Cannot use ${where}: context "${contextName}" names cluster "${context.cluster}", which it does not define`);
  const user = context.user === undefined ? undefined : config.users?.find((u) => u.name === context.user);
  if (context.user !== undefined && user === undefined) throw new CredentialsError(`Cannot use ${where}: context "${contextName}" names user "${context.user}", which it does not define`);
  const credentials = user?.user ?? {};
  const unsupported = credentials.exec !== undefined ? "an exec plugin" : credentials["auth-provider"] !== undefined ? "an auth provider" : credentials.username !== undefined ? "a user name and password" : undefined;
  if (unsupported !== undefined) {
    throw new CredentialsError(`Cannot use ${where}: user "${context.user ?? ""}" authenticates with ${unsupported}, which netclaim does not support; give it a client certificate, a token or a tokenFile`);
  }
  if (cluster["proxy-url"] !== undefined) throw new CredentialsError(`Cannot use ${where}: cluster "${context.cluster}" sets proxy-url, which netclaim does not support; reach the API server directly`);

  const base = dirname(resolve(file));
  const material = (inline: string | undefined, path: string | undefined, what: string): Buffer | undefined => {
    if (inline !== undefined) return Buffer.from(inline, "base64");
    return path === undefined ? undefined : readCredentialFile(resolve(base, path), `${what} of ${where}`);
  };
  const tls: ClientTls = {};
  const ca = material(cluster["certificate-authority-data"], cluster["certificate-authority"], `cluster "${context.cluster}"'s CA`);
  const cert = material(credentials["client-certificate-data"], credentials["client-certificate"], `user "${context.user ?? ""}"'s client certificate`);
  const key = material(credentials["client-key-data"], credentials["client-key"], `user "${context.user ?? ""}"'s client key`);
  if ((cert === undefined) !== (key === undefined)) throw new CredentialsError(`Cannot use ${where}: user "${context.user ?? ""}" has a client certificate without its key, or a key without its certificate`);
  if (ca !== undefined) tls.ca = ca;
  if (cert !== undefined) tls.cert = cert;
  if (key !== undefined) tls.key = key;
  if (cluster["insecure-skip-tls-verify"] === true) tls.rejectUnauthorized = false;
  if (cluster["tls-server-name"] !== undefined) tls.servername = cluster["tls-server-name"];

  const staticToken = credentials.token;
  const fileToken = credentials.tokenFile === undefined ? undefined : tokenFile(resolve(base, credentials.tokenFile), `the tokenFile of ${where}`, options.now);
  return {
    server: serverUrl(cluster.server, `cluster "${context.cluster}" of ${where}`),
    tls,
    authorization: () => {
      const token = staticToken ?? fileToken?.();
      return token === undefined ? undefined : `Bearer ${token}`;
    },
  };
}

/**
 * A token kept in a file that something else rotates: read at once (a
 * missing file fails the start), then again once the copy is a minute old.
 * A read that fails later keeps the copy it has, and the next request reads again.
 */
function tokenFile(file: string, what: string, now: () => number = () => performance.now()): () => string {
  let token = readToken(file, what);
  let readAt = now();
  return () => {
    if (now() - readAt >= TOKEN_FILE_TTL_MS) {
      try {
        token = readToken(file, what);
        readAt = now();
      } catch {
        // The token in hand stays valid past its rotation; the next request reads again.
      }
    }
    return token;
  };
}

function readToken(file: string, what: string): string {
  const token = readCredentialFile(file, what).toString("utf8").trim();
  if (token === "") throw new CredentialsError(`Cannot use ${what} (${file}): the file is empty`);
  return token;
}

function readCredentialFile(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new CredentialsError(`Cannot read ${what} (${file}): ${(err as Error).message}`, { cause: err });
  }
}

function serverUrl(text: string, where: string): URL {
  const refused = (cause?: unknown): CredentialsError =>
    new CredentialsError(`Cannot use the API server address "${text}" of ${where}: write it as https://<host>:<port>`, cause === undefined ? undefined : { cause });
  let url: URL;
  try {
    url = new URL(text);
  } catch (err) {
    throw refused(err);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw refused();
  return url;
}

/** The same API server and CA as `cluster`, as the identity a bearer token proves (a service account's, in tests and benches). */
export function withToken(cluster: ApiCredentials, token: string): ApiCredentials {
  const { ca, rejectUnauthorized, servername } = cluster.tls;
  return {
    server: cluster.server,
    tls: { ...(ca !== undefined && { ca }), ...(rejectUnauthorized !== undefined && { rejectUnauthorized }), ...(servername !== undefined && { servername }) },
    authorization: () => `Bearer ${token}`,
  };
}
