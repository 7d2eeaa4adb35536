// Writes records as fast as it can until killed (store crash-safety test).
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { z } from "zod";
import { StateStore, type Durability } from "../index.ts";

const Record = z.object({ generation: z.number().int(), payload: z.string() });
const store = await StateStore.open(process.argv[2] ?? "", { durability: (process.argv[3] ?? "reboot") as Durability });
const records = store.collection("burst", Record);
for (let generation = 0; ; generation++) {
  const key = `claim-${generation % 7}`;
  await records.put(key, { generation, payload: `${key}:${generation}:${"x".repeat(generation % 4096)}` });
  if (generation === 3) process.send?.("writing");
  // A "restart" store writes synchronously: let the IPC message out.
  await yieldToEventLoop();
}
