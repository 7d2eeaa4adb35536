/**
 * The inventory's last snapshot, kept on disk. Devices inside pods are
 * invisible to a host scan; without this an agent restart would drop them
 * from the ResourceSlices until their pods end, and the scheduler would see
 * allocated devices vanish.
 */
import type { Logger } from "pino";
import { z } from "zod";
import { errorMessage } from "../common/errors.ts";
import type { DeviceReport, Inventory } from "../inventory/index.ts";
import type { StateStore } from "../store/index.ts";

const KEY = "last-snapshot";

// Our own file, checked for the fields the inventory relies on; a report that
// does not fit (an older agent's) is dropped, never trusted.
const reportSchema = z.looseObject({
  name: z.string().min(1),
  publish: z.boolean(),
  reason: z.string(),
  attached: z.boolean(),
  device: z.looseObject({ ifName: z.string(), ifIndex: z.number(), linkType: z.string(), virtual: z.boolean(), lowers: z.array(z.string()), devPort: z.number() }),
  attributes: z.record(z.string(), z.unknown()),
});
const snapshotSchema = z.object({ reports: z.array(z.unknown()) });

export async function loadInventoryMemory(store: StateStore, logger: Logger): Promise<DeviceReport[]> {
  const collection = store.collection("inventory", snapshotSchema);
  try {
    const saved = await collection.get(KEY);
    return (saved?.reports ?? []).flatMap((r) => (reportSchema.safeParse(r).success ? [r as DeviceReport] : []));
  } catch (err) {
    logger.warn({ err: errorMessage(err) }, "ignoring the saved inventory snapshot");
    return [];
  }
}

/**
 * Saves the inventory's known devices at the start and on every new snapshot
 * that changed them (the file holds hundreds of devices, and is flushed to
 * disk); writes are serialized and the latest wins.
 */
export function rememberInventory(inventory: Pick<Inventory, "known" | "knownRevision" | "subscribe">, store: StateStore, logger: Logger): { flush(): Promise<void>; stop(): void } {
  const collection = store.collection("inventory", snapshotSchema);
  let chain: Promise<void> = Promise.resolve();
  let savedRevision = -1;
  const save = (): void => {
    if (inventory.knownRevision === savedRevision) return;
    savedRevision = inventory.knownRevision;
    const reports = inventory.known();
    chain = chain
      .then(() => collection.put(KEY, { reports }))
      .catch((err: unknown) => {
        // Unsaved: the next snapshot tries again, changed or not.
        savedRevision = -1;
        logger.warn({ err: errorMessage(err) }, "cannot save the inventory snapshot");
      });
  };
  save();
  const unsubscribe = inventory.subscribe(() => {
    save();
  });
  return {
    flush: () => chain,
    stop: unsubscribe,
  };
}
