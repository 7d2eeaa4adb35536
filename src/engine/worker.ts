/**
 * The attach engine's thread. The engine runs here, its netlink batches on
 * this same thread (LocalNetlink), so for the agent's event loop an attach
 * is one message out and one back (begin: two, "begun" then the result):
 * the checks, the journal write and the moves follow each other here
 * without a round trip between threads, and none of their work (JSON,
 * validation, file writes, kernel calls) runs on the main thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import { setThreadNice } from "../common/thread-priority.ts";
import { LocalNetlink } from "../netlink/index.ts";
import { StateStore } from "../store/index.ts";
import { attachGateDir } from "./attach-gate.ts";
import { AttachEngine } from "./engine.ts";
import { errorToWire, type BatchOpTimes, type EngineReply, type EngineRequest, type EngineThreadData } from "./thread-protocol.ts";

const port = parentPort;
if (port === null) throw new Error("engine/worker.ts must run as a worker thread");
const data = workerData as EngineThreadData;
const niceErrno = data.nice === undefined ? undefined : setThreadNice(data.nice);
let opTimes: BatchOpTimes[] = [];
const post = (reply: EngineReply): void => {
  port.postMessage(reply);
};
const netlink = new LocalNetlink(data.recordOpTimes ? { onOpTimes: (ops, opMs) => { opTimes.push({ ops, opMs }); } } : {});
const engine = StateStore.open(data.dir, { durability: data.durability }).then((store) => new AttachEngine({ netlink, store, gateDir: attachGateDir(data.dir) }));
engine.then(
  () => {
    post({ ready: true, ...(niceErrno !== undefined && { niceErrno }) });
  },
  (err: unknown) => {
    post({ startFailed: errorToWire(err) });
  },
);

port.on("message", (request: EngineRequest) => {
  serve(request).catch((err: unknown) => {
    post({ id: request.id, error: errorToWire(err) });
  });
});

async function serve(request: EngineRequest): Promise<void> {
  const { id } = request;
  const attacher = await engine;
  switch (request.call) {
    case "begin": {
      const onChecked = (): void => {
        post({ id, begun: true });
      };
      const { done } = await attacher.begin(request.inputs, { onChecked, ...(request.podLinks !== undefined && { podLinks: request.podLinks }) });
      post({ id, value: await done });
      return;
    }
    case "attach":
      post({ id, value: await attacher.attach(request.inputs) });
      return;
    case "batch":
      post({ id, value: await netlink.batchAcross(request.ops) });
      return;
    case "detach":
      post({ id, value: await attacher.detach(request.keys, request.options) });
      return;
    case "recover":
      post({ id, value: await attacher.recover() });
      return;
    case "retarget":
      post({ id, value: await attacher.retarget(request.targets) });
      return;
    case "attachments":
      post({ id, value: await attacher.attachments() });
      return;
    case "attached":
      post({ id, value: await attacher.attached(request.keys) });
      return;
    case "podLinks":
      post({ id, value: await attacher.podLinks() });
      return;
    case "takeOpTimes":
      post({ id, value: opTimes });
      opTimes = [];
      return;
  }
}
