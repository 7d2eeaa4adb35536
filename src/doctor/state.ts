/**
 * The agent's state on disk: the prepared claims in stateDir (dra/claim-state)
 * and the attachment journal in runtimeDir (engine/journal), each record read
 * and validated as the agent reads it. An attachment whose claim is not
 * prepared is an orphan: the agent's recovery puts such a device back on the
 * host, so one that stays says recovery cannot.
 */
import { errorMessage } from "../common/errors.ts";
import { ClaimState } from "../dra/index.ts";
import { openJournal } from "../engine/index.ts";
import { StateStore } from "../store/index.ts";
import { fail, pass, warn, type Check, type CheckResult } from "./check.ts";
import { pathKind } from "./files.ts";

export const CLAIMS_CHECK = "claim state";
export const JOURNAL_CHECK = "attachment journal";

export interface StateCheckOptions {
  readonly stateDir: string;
  readonly runtimeDir: string;
  readonly driverName: string;
}

export function stateChecks(options: StateCheckOptions): Check[] {
  return [{ name: CLAIMS_CHECK, run: () => checkState(options) }];
}

const MOUNT_FIX = "mount the agent's stateDir and runtimeDir (hostPath) into the pod as the DaemonSet does (docs/install.md)";

export async function checkState(options: StateCheckOptions): Promise<CheckResult[]> {
  const claims = await preparedClaims(options);
  if (claims.result.status === "FAIL") return [claims.result];
  return [claims.result, await checkJournal(options.runtimeDir, claims.prepared)];
}

async function preparedClaims(options: StateCheckOptions): Promise<{ result: CheckResult; prepared: ReadonlySet<string> }> {
  const kind = await pathKind(options.stateDir);
  if (kind === "missing") return { result: pass(CLAIMS_CHECK, `${options.stateDir} does not exist yet: no claim was prepared here`), prepared: new Set() };
  if (kind !== "directory") return { result: fail(CLAIMS_CHECK, `${options.stateDir} is not a directory`, MOUNT_FIX), prepared: new Set() };
  let records;
  try {
    records = await new ClaimState(await StateStore.open(options.stateDir), options.driverName).list();
  } catch (err) {
    return {
      result: fail(CLAIMS_CHECK, `a record in ${options.stateDir} does not parse: ${errorMessage(err)}`, "keep a copy of the file for a bug report, move it out of the state directory and restart the agent; the kubelet prepares the claim again"),
      prepared: new Set(),
    };
  }
  const prepared = new Set(records.filter((r) => r.state === "prepared").map((r) => r.claim.uid));
  const preparing = records.filter((r) => r.state === "preparing").map((r) => `${r.claim.namespace}/${r.claim.name}`);
  const busy = preparing.length === 0 ? "" : `; being prepared (or left by a crash, rolled back at the next start): ${preparing.join(", ")}`;
  return { result: pass(CLAIMS_CHECK, `${options.stateDir}: ${String(prepared.size)} prepared claim(s), every record parses${busy}`), prepared };
}

export async function checkJournal(runtimeDir: string, prepared: ReadonlySet<string>): Promise<CheckResult> {
  const kind = await pathKind(runtimeDir);
  if (kind === "missing") return pass(JOURNAL_CHECK, `${runtimeDir} does not exist yet: no device was attached since boot`);
  if (kind !== "directory") return fail(JOURNAL_CHECK, `${runtimeDir} is not a directory`, MOUNT_FIX);
  let records;
  try {
    records = await openJournal(await StateStore.open(runtimeDir)).list();
  } catch (err) {
    return fail(JOURNAL_CHECK, `an attachment record in ${runtimeDir} does not parse: ${errorMessage(err)}`, "keep a copy of the file for a bug report; the device it names may need putting back on the host by hand (docs/troubleshooting.md)");
  }
  // Journal keys are `<claim uid>:<device>` (agent/pod-network.ts attachmentKey).
  const orphans = records.filter(([key]) => !prepared.has(key.slice(0, key.lastIndexOf(":"))));
  if (orphans.length === 0) return pass(JOURNAL_CHECK, `${String(records.length)} attachment(s), each of a prepared claim`);
  const listed = orphans.map(([key, record]) => `${key} (${record.intent}, pod netns ${record.plan.netns}, host name ${record.host.name})`);
  return warn(
    JOURNAL_CHECK,
    `${String(orphans.length)} attachment(s) of claims not prepared: ${listed.join("; ")}`,
    "the agent's recovery puts these devices back on the host while it runs; if they stay, read the agent's log for \"recover\" (docs/troubleshooting.md)",
  );
}
