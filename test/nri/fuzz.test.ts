/**
 * Bounded-time fuzzing of everything that parses runtime input: the trunk
 * demultiplexer, the ttrpc frame parser and the Plugin service's message
 * decoders. Each runs for about a second of random inputs; a failure prints
 * the seed that reproduces it.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import {
  ConfigureRequestSchema,
  ContainerState,
  Event,
  CreateContainerRequestSchema,
  RunPodSandboxRequestSchema,
  StateChangeEventSchema,
  SynchronizeRequestSchema,
} from "../../src/gen/nri/api_pb.js";
import { HandlerBudget } from "../../src/nri/budget.ts";
import { NriError, NriHandlerError } from "../../src/nri/errors.ts";
import { TrunkMux } from "../../src/nri/mux.ts";
import { PluginService } from "../../src/nri/plugin-service.ts";
import { StatusCode } from "../../src/nri/status.ts";
import { FrameParser, MESSAGE_LENGTH_MAX, type ParsedFrame } from "../../src/nri/ttrpc-frame.ts";

const FUZZ_MS = 1000;

/** A small deterministic PRNG (mulberry32), so a failing seed reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(random: () => number, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(random() * 256);
  return out;
}

/** Splits bytes at random boundaries, single bytes included. */
function split(random: () => number, bytes: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const n = random() < 0.3 ? 1 : 1 + Math.floor(random() * Math.min(bytes.length - at, 3000));
    parts.push(bytes.subarray(at, at + n));
    at += n;
  }
  return parts;
}

function validFrame(random: () => number, streamId: number): Buffer {
  const data = randomBytes(random, random() < 0.8 ? Math.floor(random() * 64) : Math.floor(random() * 20_000));
  const frame = Buffer.allocUnsafe(10 + data.length);
  frame.writeUInt32BE(data.length, 0);
  frame.writeUInt32BE(streamId, 4);
  frame.writeUInt8(1 + Math.floor(random() * 3), 8);
  frame.writeUInt8(0, 9);
  data.copy(frame, 10);
  return frame;
}

function parseAll(parser: FrameParser, chunks: Buffer[]): ParsedFrame[] {
  return chunks.flatMap((c) => parser.push(c));
}

function fuzz(body: (random: () => number, seed: number) => void): number {
  const until = performance.now() + FUZZ_MS;
  let runs = 0;
  while (performance.now() < until) {
    const seed = Math.floor(Math.random() * 2 ** 32);
    try {
      body(rng(seed), seed);
    } catch (err) {
      throw new Error(`fuzz case failed, seed ${seed}`, { cause: err });
    }
    runs++;
  }
  return runs;
}

describe("NRI decoders under fuzzing", () => {
  it("FrameParser yields the same frames however a valid stream is split", () => {
    const runs = fuzz((random) => {
      const frames = Array.from({ length: 1 + Math.floor(random() * 8) }, (_, i) => validFrame(random, 2 * i + 1));
      const whole = Buffer.concat(frames);
      const expected = new FrameParser().push(whole);
      assert.equal(expected.length, frames.length);
      assert.deepEqual(parseAll(new FrameParser(), split(random, whole)), expected);
    });
    assert.ok(runs > 10);
  });

  it("FrameParser turns random bytes into frames or a protocol error, never anything else", () => {
    fuzz((random) => {
      // Half the cases start from valid frames with corrupted bytes, so parsing gets past the header.
      const base = random() < 0.5 ? randomBytes(random, Math.floor(random() * 4000)) : Buffer.concat([validFrame(random, 1), validFrame(random, 3)]);
      for (let i = 0; i < 4; i++) if (base.length > 0) base[Math.floor(random() * base.length)] = Math.floor(random() * 256);
      const parser = new FrameParser();
      try {
        for (const frame of parseAll(parser, split(random, base))) {
          assert.ok(frame.header.length <= MESSAGE_LENGTH_MAX || frame.kind === "oversized");
          if (frame.kind === "message") assert.equal(frame.data.length, frame.header.length);
        }
      } catch (err) {
        assert.ok(err instanceof NriError && err.code === "TTRPC_PROTOCOL", `unexpected ${String(err)}`);
      }
    });
  });

  it("TrunkMux demultiplexes random splits exactly and closes cleanly on garbage", async () => {
    const deadline = performance.now() + FUZZ_MS;
    while (performance.now() < deadline) {
      const seed = Math.floor(Math.random() * 2 ** 32);
      const random = rng(seed);
      const socket = new PassThrough();
      const mux = new TrunkMux(socket);
      const received = new Map<number, Buffer[]>([[1, []], [2, []]]);
      mux.open(1, { onData: (c) => received.get(1)!.push(c) });
      mux.open(2, { onData: (c) => received.get(2)!.push(c) });
      const sent = new Map<number, Buffer[]>([[1, []], [2, []]]);
      const wire: Buffer[] = [];
      for (let i = 0; i < 1 + Math.floor(random() * 10); i++) {
        const connId = random() < 0.1 ? 7 : 1 + Math.floor(random() * 2); // 7: nobody listens, dropped
        const payload = randomBytes(random, Math.floor(random() * 5000));
        const header = Buffer.alloc(8);
        header.writeUInt32BE(connId, 0);
        header.writeUInt32BE(payload.length, 4);
        wire.push(header, payload);
        sent.get(connId)?.push(payload);
      }
      const garbage = random() < 0.3;
      if (garbage) wire.push(randomBytes(random, 64));
      for (const part of split(random, Buffer.concat(wire))) socket.write(part);
      await new Promise((resolve) => setImmediate(resolve));
      for (const id of [1, 2]) {
        assert.deepEqual(Buffer.concat(received.get(id)!), Buffer.concat(sent.get(id)!), `seed ${seed}: connection ${id}`);
      }
      if (mux.error) assert.equal(mux.error.code, "TTRPC_PROTOCOL", `seed ${seed}`);
      mux.close();
    }
  });

  it("Plugin service decoders answer mutated and truncated messages with INVALID_ARGUMENT or serve them", async () => {
    const budget = new HandlerBudget(2000, { warnFraction: 0.5, logger: { warn() {} } });
    const service = new PluginService(
      { runPodSandbox() {}, stopPodSandbox() {}, removePodSandbox() {}, createContainer: () => ({ devices: [{ path: "/dev/x", type: "c", major: 1, minor: 2 }] }), synchronize() {} },
      budget,
      { configured() {}, synchronized() {}, warn() {} },
    );
    const methods = service.table().get("nri.pkg.api.v1alpha1.Plugin")!;
    const pod = { id: "p", uid: "u", name: "n", namespace: "ns", annotations: { a: "b" }, ips: ["203.0.113.1"], linux: { namespaces: [{ type: "network", path: "/var/run/netns/x" }] } };
    const samples: [string, Uint8Array][] = [
      ["Configure", toBinary(ConfigureRequestSchema, create(ConfigureRequestSchema, { runtimeName: "containerd", runtimeVersion: "v2.1.0", requestTimeout: 2000n }))],
      ["Synchronize", toBinary(SynchronizeRequestSchema, create(SynchronizeRequestSchema, { pods: [pod], containers: [{ id: "c", podSandboxId: "p", state: ContainerState.CONTAINER_RUNNING }] }))],
      ["RunPodSandbox", toBinary(RunPodSandboxRequestSchema, create(RunPodSandboxRequestSchema, { pod }))],
      ["StateChange", toBinary(StateChangeEventSchema, create(StateChangeEventSchema, { event: Event.STOP_POD_SANDBOX, pod }))],
      ["CreateContainer", toBinary(CreateContainerRequestSchema, create(CreateContainerRequestSchema, { pod, container: { id: "c", name: "app" } }))],
    ];
    const deadline = performance.now() + FUZZ_MS;
    let refused = 0;
    while (performance.now() < deadline) {
      const seed = Math.floor(Math.random() * 2 ** 32);
      const random = rng(seed);
      const [method, valid] = samples[Math.floor(random() * samples.length)]!;
      const bytes = Buffer.from(valid);
      const mutated = random() < 0.5 ? bytes.subarray(0, Math.floor(random() * bytes.length)) : bytes;
      for (let i = 0; i < 1 + Math.floor(random() * 3); i++) if (mutated.length > 0) mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256);
      try {
        await methods.get(method)!(mutated, { service: "nri.pkg.api.v1alpha1.Plugin", method, streamId: 1, signal: new AbortController().signal, deadline: undefined });
      } catch (err) {
        assert.ok(err instanceof NriHandlerError && err.status === StatusCode.INVALID_ARGUMENT, `seed ${seed} (${method}): ${String(err)}`);
        assert.match(err.message, new RegExp(`^${method}: cannot decode `));
        refused++;
      }
    }
    assert.ok(refused > 0, "some mutations must be refused");
  });
});
