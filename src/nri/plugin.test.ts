import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createNriPlugin } from "./plugin.ts";

describe("createNriPlugin", () => {
  it("refuses a plugin without event handlers", () => {
    assert.throws(() => createNriPlugin({ synchronize() {} }), { name: "TypeError", message: /without event handlers/ });
  });

  it("refuses an index that is not two digits and a name the runtime would reject", () => {
    assert.throws(() => createNriPlugin({ runPodSandbox() {} }, { pluginIndex: "5", env: {} }), RangeError);
    assert.throws(() => createNriPlugin({ runPodSandbox() {} }, { pluginName: "net claim", env: {} }), RangeError);
  });

  it("takes identity and fd from the environment when the runtime launched it", () => {
    const plugin = createNriPlugin({ runPodSandbox() {} }, { env: { NRI_PLUGIN_SOCKET: "3", NRI_PLUGIN_NAME: "netclaim", NRI_PLUGIN_IDX: "42" } });
    assert.deepEqual(plugin.transport, { kind: "pre-launched", fd: 3, pluginName: "netclaim", pluginIndex: "42" });
  });

  it("retries while the runtime's socket is missing, reporting disconnected, and closes idempotently", async () => {
    const failures: unknown[] = [];
    const plugin = createNriPlugin(
      { runPodSandbox() {} },
      { socketPath: "/tmp/nc-nri-absent/nri.sock", env: {}, reconnect: { initialMs: 5, maxMs: 10 }, logger: { info() {}, warn: (fields) => failures.push(fields.error) } },
    );
    const states: string[] = [];
    plugin.onStateChange((state) => states.push(state));
    const waiting = plugin.whenConnected();
    plugin.start();
    while (failures.length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(plugin.state, "disconnected");
    assert.match(String(failures[0]), /^Cannot connect to NRI socket \/tmp\/nc-nri-absent\/nri.sock: connect ENOENT/);
    await assert.rejects(plugin.updateContainers([{ containerId: "c" }]), { code: "TTRPC_CLOSED" });
    await plugin.close();
    await plugin.close();
    await assert.rejects(waiting, { code: "TTRPC_CLOSED" });
    assert.deepEqual(states, ["closed"]);
    await assert.rejects(plugin.whenConnected(), { code: "TTRPC_CLOSED" });
  });
});
