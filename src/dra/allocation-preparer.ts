/**
 * The simplest ClaimPreparer: one prepared device per allocated device, no
 * CDI devices, and the allocation itself as the plan. It takes nothing, so
 * it has nothing to release. The claims layer replaces it with one that
 * validates the network configuration and plans interfaces.
 */
import { baseRequestName, type ClaimPreparer, type DriverClaim, type PreparedClaim } from "./claim.ts";

export class AllocationPreparer implements ClaimPreparer {
  prepare(claim: DriverClaim): Promise<PreparedClaim> {
    return Promise.resolve({
      devices: claim.results.map((r) => ({
        requestNames: [baseRequestName(r.request)],
        poolName: r.pool,
        deviceName: r.device,
        cdiDeviceIDs: [],
        shareID: r.shareID,
      })),
      plan: {
        results: claim.results.map((r) => ({ request: r.request, pool: r.pool, device: r.device })),
        config: claim.config.map((c) => ({ requests: [...c.requests], parameters: c.parameters })),
      },
    });
  }

  unprepare(): Promise<void> {
    return Promise.resolve();
  }
}
