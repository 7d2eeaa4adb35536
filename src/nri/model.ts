import { create } from "@bufbuild/protobuf";
import {
  ContainerAdjustmentSchema,
  type Container,
  type ContainerAdjustment,
  type PodSandbox,
} from "../gen/nri/api_pb.js";

/**
 * What handlers see of the runtime's objects: plain, immutable, free of
 * protobuf types and of anything Kubernetes-specific beyond the identity the
 * runtime reports.
 */
export interface PodSandboxInfo {
  readonly id: string;
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  /** The pod's network namespace (`linux.namespaces[type=network].path`); undefined for host-network pods. */
  readonly netnsPath: string | undefined;
  /** Filled by containerd ≥ 2.1 and CRI-O ≥ 1.32 (NRI v0.8 field); empty before. */
  readonly ips: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** The pause process, 0 when unknown. */
  readonly pid: number;
}

export const ContainerState = { UNKNOWN: "unknown", CREATED: "created", PAUSED: "paused", RUNNING: "running", STOPPED: "stopped" } as const;
export type ContainerState = (typeof ContainerState)[keyof typeof ContainerState];
const containerStates: readonly ContainerState[] = ["unknown", "created", "paused", "running", "stopped"];

export interface ContainerInfo {
  readonly id: string;
  readonly podSandboxId: string;
  readonly name: string;
  readonly state: ContainerState;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly pid: number;
}

/** A device node to create in the container (OCI `linux.devices`). */
export interface LinuxDeviceSpec {
  readonly path: string;
  /** "c" (character), "b" (block), "u" (unbuffered character) or "p" (FIFO). */
  readonly type: "c" | "b" | "u" | "p";
  readonly major: number;
  readonly minor: number;
  readonly fileMode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

/** The changes a CreateContainer handler asks the runtime to make. */
export interface ContainerAdjustmentSpec {
  readonly devices?: readonly LinuxDeviceSpec[];
  readonly env?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export function podSandboxInfo(pod: PodSandbox | undefined): PodSandboxInfo {
  return {
    id: pod?.id ?? "",
    uid: pod?.uid ?? "",
    name: pod?.name ?? "",
    namespace: pod?.namespace ?? "",
    netnsPath: pod?.linux?.namespaces.find((ns) => ns.type === "network")?.path || undefined,
    ips: pod?.ips ?? [],
    labels: pod?.labels ?? {},
    annotations: pod?.annotations ?? {},
    pid: pod?.pid ?? 0,
  };
}

export function containerInfo(container: Container | undefined): ContainerInfo {
  return {
    id: container?.id ?? "",
    podSandboxId: container?.podSandboxId ?? "",
    name: container?.name ?? "",
    state: containerStates[container?.state ?? 0] ?? "unknown",
    labels: container?.labels ?? {},
    annotations: container?.annotations ?? {},
    pid: container?.pid ?? 0,
  };
}

export function containerAdjustment(spec: ContainerAdjustmentSpec): ContainerAdjustment {
  return create(ContainerAdjustmentSchema, {
    annotations: { ...spec.annotations },
    env: Object.entries(spec.env ?? {}).map(([key, value]) => ({ key, value })),
    linux: {
      devices: (spec.devices ?? []).map((d) => ({
        path: d.path,
        type: d.type,
        major: BigInt(d.major),
        minor: BigInt(d.minor),
        ...(d.fileMode === undefined ? {} : { fileMode: { value: d.fileMode } }),
        ...(d.uid === undefined ? {} : { uid: { value: d.uid } }),
        ...(d.gid === undefined ? {} : { gid: { value: d.gid } }),
      })),
    },
  });
}
