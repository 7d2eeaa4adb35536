/**
 * The attach gate: one file per attachment that exists exactly while its
 * device is attached and configured in its pod.
 *
 * Each container that uses a netclaim device gets the file bind-mounted by
 * its CDI device (claims' CDI specs, written at prepare). A bind mount whose
 * source is missing fails the container in the OCI runtime (runc, crun)
 * before its command runs, and the kubelet retries it. So even when the
 * runtime lets a container through without netclaim's NRI answer (an agent
 * that died while the runtime waited for it, on NRI before v0.12.5), that
 * container cannot start before its interface is there.
 *
 * The file holds the interface's name in the pod, so a workload can read
 * which of its interfaces a device became.
 *
 * The calls are synchronous: the engine runs on a thread of its own, and on
 * a tmpfs a synchronous call takes microseconds, less than handing an
 * asynchronous one to the thread pool and back, which wakes another thread
 * on the attach's path.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Attachment keys are "<claim uid>:<device>": nothing in them needs escaping in a file name. */
const KEY = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

/** The gates' directory under the agent's runtimeDir (a tmpfs: a reboot leaves no pod attached). */
export function attachGateDir(runtimeDir: string): string {
  return join(runtimeDir, "attach-gates");
}

/** Where the gate of attachment `key` lives under `dir`; the CDI spec mounts it from there. */
export function attachGatePath(dir: string, key: string): string {
  if (!KEY.test(key)) throw new Error(`attachment key "${key}" cannot name an attach gate file`);
  return join(dir, key);
}

export class AttachGate {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  /** Opens the gate: written whole (temporary name, then rename), so a runtime never mounts half a file. */
  open(key: string, podName: string): void {
    const file = attachGatePath(this.#dir, key);
    const temp = `${file}.tmp`;
    try {
      writeFileSync(temp, `${podName}\n`, { mode: 0o444 });
    } catch (err) {
      // The directory is made by the first gate, and again if someone removed it.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      mkdirSync(this.#dir, { recursive: true, mode: 0o755 });
      writeFileSync(temp, `${podName}\n`, { mode: 0o444 });
    }
    renameSync(temp, file);
  }

  /** Closes the gate; closing a closed one is fine. */
  close(key: string): void {
    rmSync(attachGatePath(this.#dir, key), { force: true });
  }
}
