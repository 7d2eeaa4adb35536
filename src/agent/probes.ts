/**
 * What /readyz and /livez report, kept apart from HTTP and from the parts
 * they ask about: the agent tells Readiness how to read each fact as the
 * part that knows it starts, and until then the fact does not hold (the
 * endpoints serve while the agent is still starting).
 */
import { join } from "node:path";
import { errorMessage } from "../common/errors.ts";

/** What probeSocketPath needs of an AgentConfig. */
export interface ProbeSocketConfig {
  runtimeDir: string;
  kubelet: { podUID?: string | undefined };
}

/**
 * Where this agent serves /readyz and /livez to its own pod's exec probes
 * (`netclaim probe`): a unix socket named after the pod, so the two agents
 * of a rolling update, which share the node's network and runtimeDir, each
 * answer their own pod's probes. Without a pod UID there is one agent.
 */
export function probeSocketPath(config: ProbeSocketConfig): string {
  return join(config.runtimeDir, "probes", `${config.kubelet.podUID ?? "agent"}.sock`);
}

/** The facts the agent is ready on, in the words /readyz names a missing one with. */
export const READINESS_CONDITIONS = ["registered with the kubelet", "connected to NRI", "ResourceSlices published"] as const;
export type ReadinessCondition = (typeof READINESS_CONDITIONS)[number];

export class Readiness {
  readonly #checks = new Map<ReadinessCondition, () => boolean>();

  /** From now on `condition` holds while `check` says so. */
  track(condition: ReadinessCondition, check: () => boolean): void {
    this.#checks.set(condition, check);
  }

  /** The conditions that do not hold now, in READINESS_CONDITIONS order; empty when ready. */
  missing(): ReadinessCondition[] {
    return READINESS_CONDITIONS.filter((condition) => this.#checks.get(condition)?.() !== true);
  }
}

/** A part that must answer for the agent to be alive; `ask` should be cheap. */
export interface LivenessCheck {
  name: string;
  ask: () => Promise<unknown>;
}

export const DEFAULT_LIVENESS_TIMEOUT_MS = 5_000;

/**
 * What is wrong with each check that did not answer within `timeoutMs`,
 * named; empty when all did. A check that fails fast is as dead as one that
 * hangs: the engine thread rejects calls it cannot serve.
 */
export async function unanswered(checks: readonly LivenessCheck[], timeoutMs = DEFAULT_LIVENESS_TIMEOUT_MS): Promise<string[]> {
  const verdicts = await Promise.all(checks.map((check) => askWithin(check, timeoutMs)));
  return verdicts.filter((verdict) => verdict !== undefined);
}

async function askWithin(check: LivenessCheck, timeoutMs: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(resolve, timeoutMs, `no answer within ${timeoutMs} ms`);
  });
  try {
    const answered = check.ask().then(
      () => undefined,
      (err: unknown) => `failed: ${errorMessage(err)}`,
    );
    const problem = await Promise.race([answered, late]);
    return problem === undefined ? undefined : `${check.name}: ${problem}`;
  } finally {
    clearTimeout(timer);
  }
}
