import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as v1 from "../gen/kubelet/dra/v1/dra_pb.js";
import * as v1beta1 from "../gen/kubelet/dra/v1beta1/dra_pb.js";
import { RpcStatusError } from "./errors.ts";
import { addService } from "./grpc-service.ts";

/** One implementation served under both packages, as the DRA socket does. */
const impl = {
  nodePrepareResources(request: { claims: readonly { uid: string }[] }) {
    if (request.claims.length === 0) return Promise.reject(new RpcStatusError(grpc.status.INVALID_ARGUMENT, "no claims"));
    return Promise.resolve({ claims: Object.fromEntries(request.claims.map((c) => [c.uid, { devices: [{ poolName: "p", deviceName: `d-${c.uid}` }] }])) });
  },
  nodeUnprepareResources() {
    return Promise.reject(new Error("disk on fire"));
  },
};

describe("addService", () => {
  let dir: string;
  let server: grpc.Server;
  let client: grpc.Client;

  before(async () => {
    dir = await mkdtemp("/tmp/nc-dra-grpc-");
    server = new grpc.Server();
    addService(server, v1.DRAPlugin, impl);
    addService(server, v1beta1.DRAPlugin, impl);
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix://${join(dir, "s.sock")}`, grpc.ServerCredentials.createInsecure(), (err) => {
        if (err) reject(err);
        else resolve();
      });
    });
    client = new grpc.Client(`unix://${join(dir, "s.sock")}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    server.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  /** Calls `path` with raw bytes, as any gRPC client in any language would. */
  const call = (path: string, body: Uint8Array) =>
    new Promise<Buffer>((resolve, reject) => {
      client.makeUnaryRequest(path, (b: Uint8Array) => Buffer.from(b), (b: Buffer) => b, body, (err, value) => {
        if (err) reject(err);
        else resolve(value!);
      });
    });

  it("addService serves the descriptor's wire path with its message codecs", async () => {
    for (const [pkg, req, res] of [
      ["k8s.io.kubelet.pkg.apis.dra.v1", v1.NodePrepareResourcesRequestSchema, v1.NodePrepareResourcesResponseSchema],
      ["k8s.io.kubelet.pkg.apis.dra.v1beta1", v1beta1.NodePrepareResourcesRequestSchema, v1beta1.NodePrepareResourcesResponseSchema],
    ] as const) {
      const body = toBinary(req, create(req, { claims: [{ namespace: "n", uid: "u1", name: "c" }] }));
      const answer = fromBinary(res, await call(`/${pkg}.DRAPlugin/NodePrepareResources`, body));
      assert.equal(answer.claims.u1?.devices[0]?.deviceName, "d-u1", pkg);
    }
  });

  it("addService turns an RpcStatusError into its status and anything else into UNKNOWN", async () => {
    await assert.rejects(call("/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodePrepareResources", new Uint8Array()), {
      code: grpc.status.INVALID_ARGUMENT,
      details: "no claims",
    });
    await assert.rejects(call("/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodeUnprepareResources", new Uint8Array()), {
      code: grpc.status.UNKNOWN,
      details: "disk on fire",
    });
  });
});
