/**
 * Device health for the kubelet (DRAResourceHealth) from the inventory: a
 * published device is healthy unless its link reports no lower layer (cable
 * or PF down) or is not present. Devices inside pods are not visible to the
 * host scan, and the inventory keeps reporting them as they were.
 */
import type { DeviceHealthReport, DeviceHealthSource } from "../dra/index.ts";
import type { Inventory, InventorySnapshot } from "../inventory/index.ts";

const UNHEALTHY_OPERSTATES = new Set(["lowerlayerdown", "notpresent"]);

export class InventoryHealth implements DeviceHealthSource {
  readonly #inventory: Inventory;
  readonly #pool: string;

  constructor(inventory: Inventory, pool: string) {
    this.#inventory = inventory;
    this.#pool = pool;
  }

  devices(): readonly DeviceHealthReport[] {
    return healthOf(this.#inventory.current(), this.#pool);
  }

  onChange(listener: () => void): Disposable {
    const unsubscribe = this.#inventory.subscribe(() => {
      listener();
    });
    return { [Symbol.dispose]: unsubscribe };
  }
}

export function healthOf(snapshot: InventorySnapshot, pool: string): DeviceHealthReport[] {
  return snapshot.reports
    .filter((r) => r.publish)
    .map((r) => {
      const state = r.device.operState;
      return state !== undefined && UNHEALTHY_OPERSTATES.has(state) && !r.attached
        ? { pool, device: r.name, health: "unhealthy" as const, message: `${r.device.ifName} reports operstate ${state} (no carrier or lower device down)` }
        : { pool, device: r.name, health: "healthy" as const };
    });
}
