import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { KubeClient } from "./client.ts";
import { CredentialsError, inClusterCredentials, kubeconfigCredentials, TOKEN_FILE_TTL_MS } from "./credentials.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "netclaim-credentials-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const b64 = (text: string): string => Buffer.from(text).toString("base64");

/** A kubeconfig whose current context is "ctx" on cluster "c" as user "u". */
async function kubeconfig(name: string, cluster: Record<string, unknown>, user: Record<string, unknown> | null): Promise<string> {
  const file = join(dir, name);
  await writeFile(
    file,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      "current-context": "ctx",
      clusters: [{ name: "other", cluster: { server: "https://198.51.100.9:6443" } }, { name: "c", cluster }],
      users: [{ name: "u", user }],
      contexts: [{ name: "ctx", context: { cluster: "c", user: "u", namespace: "ns" } }],
    }),
  );
  return file;
}

/** A clock the test moves. */
function clock(): { now: () => number; advance(ms: number): void } {
  let t = 0;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe("kubeconfigCredentials", () => {
  it("takes the current context's cluster and user, with inline certificates decoded", async () => {
    const file = await kubeconfig(
      "inline.yaml",
      { server: "https://198.51.100.7:6443", "certificate-authority-data": b64("CA"), "tls-server-name": "api.example" },
      { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") },
    );
    const credentials = kubeconfigCredentials(file);
    assert.equal(credentials.server.href, "https://198.51.100.7:6443/");
    assert.deepEqual(
      { ca: credentials.tls.ca?.toString(), cert: credentials.tls.cert?.toString(), key: credentials.tls.key?.toString(), servername: credentials.tls.servername, verify: credentials.tls.rejectUnauthorized },
      { ca: "CA", cert: "CERT", key: "KEY", servername: "api.example", verify: undefined },
    );
    assert.equal(credentials.authorization(), undefined);
  });

  it("reads files named relative to the kubeconfig's directory, and skips verification only when told", async () => {
    await writeFile(join(dir, "ca.crt"), "FILE-CA");
    const file = await kubeconfig("files.yaml", { server: "https://198.51.100.7:6443", "certificate-authority": "ca.crt", "insecure-skip-tls-verify": true }, { token: "static" });
    const credentials = kubeconfigCredentials(file);
    assert.equal(credentials.tls.ca?.toString(), "FILE-CA");
    assert.equal(credentials.tls.rejectUnauthorized, false);
    assert.equal(credentials.authorization(), "Bearer static");
  });

  it("sends a rotated tokenFile's new token once its copy is a minute old, and keeps the old one while the file is unreadable", async () => {
    const received: (string | undefined)[] = [];
    const server = http.createServer((req, res) => {
      received.push(req.headers.authorization);
      res.setHeader("content-type", "application/json");
      res.end("{}");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const tokenFile = join(dir, "rotating-token");
    await writeFile(tokenFile, "first\n");
    const file = await kubeconfig("token-file.yaml", { server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }, { tokenFile: "rotating-token" });
    const time = clock();
    const client = KubeClient.create(kubeconfigCredentials(file, { now: time.now }));
    try {
      await client.request("GET", "/version");
      await writeFile(tokenFile, "second\n");
      await client.request("GET", "/version");
      time.advance(TOKEN_FILE_TTL_MS);
      await client.request("GET", "/version");
      await rm(tokenFile);
      time.advance(TOKEN_FILE_TTL_MS);
      await client.request("GET", "/version");
      await writeFile(tokenFile, "third\n");
      await client.request("GET", "/version");
    } finally {
      client.close();
      server.close();
    }
    assert.deepEqual(received, ["Bearer first", "Bearer first", "Bearer second", "Bearer second", "Bearer third"]);
  });

  for (const [what, user, message] of [
    ["an exec plugin", { exec: { apiVersion: "client.authentication.k8s.io/v1", command: "aws" } }, /user "u" authenticates with an exec plugin, which netclaim does not support; give it a client certificate, a token or a tokenFile/],
    ["an auth provider", { "auth-provider": { name: "oidc" } }, /authenticates with an auth provider/],
    ["a password", { username: "admin", password: "secret" }, /authenticates with a user name and password/],
    ["a certificate without its key", { "client-certificate-data": b64("CERT") }, /has a client certificate without its key/],
  ] as const) {
    it(`refuses a user with ${what}, saying what to use instead`, async () => {
      const file = await kubeconfig(`refused-${what.replaceAll(" ", "-")}.yaml`, { server: "https://198.51.100.7:6443" }, user);
      assert.throws(() => kubeconfigCredentials(file), (err: unknown) => err instanceof CredentialsError && message.test(err.message) && err.message.includes(file));
    });
  }

  it("names what is missing in a kubeconfig it cannot use", async () => {
    const noContext = join(dir, "no-context.yaml");
    await writeFile(noContext, stringify({ clusters: [], users: [], contexts: [] }));
    assert.throws(() => kubeconfigCredentials(noContext), /it has no current-context; set one with kubectl config use-context/);
    const badServer = await kubeconfig("bad-server.yaml", { server: "198.51.100.7:6443" }, null);
    assert.throws(() => kubeconfigCredentials(badServer), /API server address "198.51.100.7:6443" of cluster "c" .*: write it as https:\/\/<host>:<port>/);
    const badShape = join(dir, "bad-shape.yaml");
    await writeFile(badShape, stringify({ "current-context": "ctx", clusters: [{ name: "c", cluster: {} }] }));
    assert.throws(() => kubeconfigCredentials(badShape), /Cannot use kubeconfig .*bad-shape.yaml: clusters.0.cluster.server: /);
    assert.throws(() => kubeconfigCredentials(join(dir, "absent.yaml")), /Cannot read kubeconfig .*absent.yaml: ENOENT/);
  });
});

describe("inClusterCredentials", () => {
  async function serviceAccount(token: string): Promise<string> {
    const sa = await mkdtemp(join(dir, "sa-"));
    await writeFile(join(sa, "ca.crt"), "SA-CA");
    await writeFile(join(sa, "token"), token);
    return sa;
  }

  it("reaches the API server the kubelet names, IPv6 included, with the service account's CA and token", async () => {
    const sa = await serviceAccount("sa-token");
    const credentials = inClusterCredentials({ env: { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" }, dir: sa });
    assert.equal(credentials.server.href, "https://[fd00::1]/");
    assert.equal(credentials.tls.ca?.toString(), "SA-CA");
    assert.equal(credentials.authorization(), "Bearer sa-token");
  });

  it("reads the token again as the kubelet rotates it", async () => {
    const sa = await serviceAccount("before");
    const time = clock();
    const credentials = inClusterCredentials({ env: { KUBERNETES_SERVICE_HOST: "198.51.100.1", KUBERNETES_SERVICE_PORT: "6443" }, dir: sa, now: time.now });
    await writeFile(join(sa, "token"), "after");
    assert.equal(credentials.authorization(), "Bearer before");
    time.advance(TOKEN_FILE_TTL_MS);
    assert.equal(credentials.authorization(), "Bearer after");
  });

  it("says to give a kubeconfig outside a pod, and fails at once without a token", async () => {
    assert.throws(() => inClusterCredentials({ env: {} }), /not in a pod .*give a kubeconfig with --kubeconfig or KUBECONFIG/);
    const sa = await serviceAccount("");
    assert.throws(() => inClusterCredentials({ env: { KUBERNETES_SERVICE_HOST: "198.51.100.1", KUBERNETES_SERVICE_PORT: "6443" }, dir: sa }), /the service account's token .*: the file is empty/);
  });
});
