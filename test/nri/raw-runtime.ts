/**
 * A hand-driven runtime for protocol tests: it accepts the plugin's
 * connection, answers RegisterPlugin like a runtime, and lets a test write
 * arbitrary bytes on connection 1 (the Plugin service) and read the ttrpc
 * frames the plugin answers with.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createServer, type Server, type Socket } from "node:net";
import { RequestSchema, ResponseSchema, type Response } from "../../src/gen/ttrpc/ttrpc_pb.js";
import { ConnId, TrunkMux } from "../../src/nri/mux.ts";
import { FrameParser, MessageType, type FrameHeader } from "../../src/nri/ttrpc-frame.ts";
import { TtrpcServer } from "../../src/nri/ttrpc-server.ts";

export interface AnsweredFrame {
  header: FrameHeader;
  response: Response;
}

export class RawConnection {
  readonly socket: Socket;
  readonly mux: TrunkMux;
  readonly answers: AnsweredFrame[] = [];
  #waiters = new Set<() => void>();

  constructor(socket: Socket) {
    this.socket = socket;
    this.mux = new TrunkMux(socket);
    const parser = new FrameParser();
    this.mux.open(ConnId.PLUGIN_SERVICE, {
      onData: (chunk) => {
        for (const frame of parser.push(chunk)) {
          if (frame.kind !== "message") continue;
          this.answers.push({ header: frame.header, response: fromBinary(ResponseSchema, frame.data) });
        }
        for (const wake of [...this.#waiters]) wake();
      },
    });
    const ok = async (): Promise<Uint8Array> => Promise.resolve(new Uint8Array());
    new TtrpcServer(this.mux, ConnId.RUNTIME_SERVICE, new Map([["nri.pkg.api.v1alpha1.Runtime", new Map([["RegisterPlugin", ok]])]]));
  }

  /** Writes raw bytes as one trunk frame on a connection (any size, no splitting). */
  writeTrunk(connId: number, payload: Uint8Array): void {
    const header = Buffer.alloc(8);
    header.writeUInt32BE(connId, 0);
    header.writeUInt32BE(payload.length, 4);
    this.socket.write(Buffer.concat([header, payload]));
  }

  /** Writes a ttrpc frame on connection 1 with a raw data section, split like Go does. */
  writeFrame(streamId: number, type: number, data: Uint8Array, claimedLength = data.length): void {
    const frame = Buffer.alloc(10 + data.length);
    frame.writeUInt32BE(claimedLength, 0);
    frame.writeUInt32BE(streamId, 4);
    frame.writeUInt8(type, 8);
    frame.set(data, 10);
    for (let at = 0; at < frame.length; at += 4096) this.writeTrunk(ConnId.PLUGIN_SERVICE, frame.subarray(at, at + 4096));
  }

  async answerFor(streamId: number, timeoutMs = 5000): Promise<Response> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.answers.find((a) => a.header.streamId === streamId && a.header.type === MessageType.RESPONSE);
      if (found) return found.response;
      if (Date.now() > deadline) throw new Error(`no answer on stream ${streamId}`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.#waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, 50);
        this.#waiters.add(wake);
      });
    }
  }
}

export class RawRuntime {
  readonly connections: RawConnection[] = [];
  readonly #server: Server;
  #waiters = new Set<() => void>();

  private constructor(server: Server) {
    this.#server = server;
    server.on("connection", (socket) => {
      this.connections.push(new RawConnection(socket));
      for (const wake of [...this.#waiters]) wake();
    });
  }

  static async listen(path: string): Promise<RawRuntime> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    return new RawRuntime(server);
  }

  /** The n-th connection the plugin made (1-based). */
  async connection(n: number): Promise<RawConnection> {
    while (this.connections.length < n) {
      await new Promise<void>((resolve) => this.#waiters.add(() => {
        resolve();
      }));
    }
    return this.connections[n - 1]!;
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => {
      resolve();
    }));
  }
}

export function request(service: string, method: string, payload: Uint8Array = new Uint8Array()): Uint8Array {
  return toBinary(RequestSchema, create(RequestSchema, { service, method, payload }));
}
