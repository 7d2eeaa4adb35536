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

/** A header promising just over 4 MiB, followed by its whole body or up to 100 bytes of it. */
function oversizedFrame(random: () => number, whole: boolean): Buffer {
  const length = MESSAGE_LENGTH_MAX + 1 + Math.floor(random() * 1000);
  const frame = Buffer.alloc(10 + (whole ? length : Math.floor(random() * 100)));
  frame.writeUInt32BE(length, 0);
  frame.writeUInt32BE(1 + 2 * Math.floor(random() * 100), 4);
  frame.writeUInt8(1 + Math.floor(random() * 3), 8);
  return frame;
}

/**
 * The ttrpc framing read straight off a whole buffer, with none of the
 * parser's incremental state: the oracle the fuzz cases compare it with.
 * Trailing bytes of an incomplete frame yield nothing.
 */
function referenceFrames(bytes: Buffer): { frames: ParsedFrame[]; desync?: { type: number; streamId: number } } {
  const frames: ParsedFrame[] = [];
  let at = 0;
  while (bytes.length - at >= 10) {
    const header = { length: bytes.readUInt32BE(at), streamId: bytes.readUInt32BE(at + 4), type: bytes[at + 8]!, flags: bytes[at + 9]! };
    if (header.type < 1 || header.type > 3) return { frames, desync: { type: header.type, streamId: header.streamId } };
    if (header.length > MESSAGE_LENGTH_MAX) {
      frames.push({ kind: "oversized", header });
      at += 10 + header.length;
      continue;
    }
    if (bytes.length - at - 10 < header.length) break;
    frames.push({ kind: "message", header, data: bytes.subarray(at + 10, at + 10 + header.length) });
    at += 10 + header.length;
  }
  return { frames };
}

function comparable(frame: ParsedFrame): unknown {
  return frame.kind === "message" ? { ...frame, data: frame.data.toString("hex") } : frame;
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

  it("FrameParser reads corrupt and random bytes, however split, exactly as a whole-buffer reference reader does", () => {
    let desyncs = 0;
    let oversized = 0;
    const runs = fuzz((random) => {
      // Half the cases start from valid frames with corrupted bytes, so parsing gets past the header.
      let base = random() < 0.5 ? randomBytes(random, Math.floor(random() * 4000)) : Buffer.concat([validFrame(random, 1), validFrame(random, 3)]);
      for (let i = 0; i < 4; i++) if (base.length > 0) base[Math.floor(random() * base.length)] = Math.floor(random() * 256);
      // Now and then an oversized message after a valid frame: part of its body, or all of it and what follows.
      const dice = random();
      if (dice < 0.2) base = Buffer.concat([validFrame(random, 5), oversizedFrame(random, dice < 0.05), base]);
      const expected = referenceFrames(base);
      const parser = new FrameParser();
      const got: ParsedFrame[] = [];
      let error: unknown;
      try {
        for (const chunk of split(random, base)) got.push(...parser.push(chunk));
      } catch (err) {
        error = err;
      }
      if (expected.desync === undefined) {
        assert.equal(error, undefined);
        assert.deepEqual(got.map(comparable), expected.frames.map(comparable));
      } else {
        desyncs++;
        assert.ok(error instanceof NriError && error.code === "TTRPC_PROTOCOL", `expected a desync, got ${String(error)}`);
        assert.equal(error.message, `Cannot parse ttrpc frame: unknown message type ${expected.desync.type} on stream ${expected.desync.streamId}`);
        // The push that met the bad header throws away the frames it had completed: what came before is a prefix.
        assert.deepEqual(got.map(comparable), expected.frames.slice(0, got.length).map(comparable));
      }
      oversized += expected.frames.filter((f) => f.kind === "oversized").length;
    });
    assert.ok(runs > 10);
    assert.ok(desyncs > 0 && desyncs < runs, `desyncs in ${desyncs} of ${runs} cases: the cases must cover both outcomes`);
    assert.ok(oversized > 0, "some cases must have an oversized message");
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
      { failRequests: true },
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
