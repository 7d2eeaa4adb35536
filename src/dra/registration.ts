/**
 * The kubelet plugin registration service on `plugins_registry/`: the
 * kubelet's watcher finds the socket, calls GetInfo (1 s timeout), picks the
 * first advertised DRAPlugin version it supports, and reports the outcome
 * with NotifyRegistrationStatus.
 *
 * The advertised names are `<version>.DRAPlugin`, not the wire service names
 * (`k8s.io.kubelet.pkg.apis.dra.<version>.DRAPlugin`); the health service's
 * advertised name does match its wire name.
 */
export const PLUGIN_TYPE = "DRAPlugin";
/** The health service's versions, as advertised: the kubelet takes the first it knows (1.37+: v1). */
export const HEALTH_SERVICE_NAMES = ["v1.DRAResourceHealth", "v1alpha1.DRAResourceHealth"] as const;

export const DRA_VERSIONS = ["v1", "v1beta1"] as const;
export type DraVersion = (typeof DRA_VERSIONS)[number];

export interface RegistrationStatus {
  readonly registered: boolean;
  readonly error: string;
}

export interface RegistrationInfo {
  readonly driver: string;
  /** The DRA socket's absolute path. */
  readonly endpoint: string;
  /** Served DRAPlugin versions, most preferred first. */
  readonly versions: readonly DraVersion[];
  readonly health: boolean;
}

/** What GetInfo advertises, in order: the kubelet takes the first DRAPlugin it knows. */
export function supportedVersions(info: Pick<RegistrationInfo, "versions" | "health">): string[] {
  return [...info.versions.map((v) => `${v}.${PLUGIN_TYPE}`), ...(info.health ? HEALTH_SERVICE_NAMES : [])];
}

export function registrationService(info: RegistrationInfo, onStatus: (status: RegistrationStatus) => void) {
  return {
    getInfo() {
      return Promise.resolve({ type: PLUGIN_TYPE, name: info.driver, endpoint: info.endpoint, supportedVersions: supportedVersions(info) });
    },
    notifyRegistrationStatus(request: { pluginRegistered: boolean; error: string }) {
      onStatus({ registered: request.pluginRegistered, error: request.error });
      return Promise.resolve({});
    },
  };
}
