/**
 * The composition root: starts the agent's parts in dependency order and
 * stops them in reverse when the signal fires (or unwinds what started if a
 * later part fails).
 *
 * Start order, and why:
 *  1. state store, API client;
 *  2. the engine's thread (which runs every netlink request) and its
 *     recovery: finish or roll back what a crashed agent left, before
 *     anything new happens (a device it cannot recover is reported, never
 *     a reason not to start); recovery runs again on a timer and after
 *     every NRI reconnection;
 *  3. inventory, device health (which taints devices) and slice
 *     publication (the scheduler needs our devices);
 *  4. NRI plugin (so pod starts are seen);
 *  5. DRA plugin last: the kubelet only sends prepares once we can attach.
 * Stop order is the reverse: the kubelet stops sending work first.
 *
 * The HTTP endpoints (probes, metrics; on this agent's probe socket and on
 * the node's port) serve from right after the engine's thread starts, so a
 * start that waits (for the API server, say) is alive and says what it
 * still waits for; each readiness fact is tracked as the part that knows it
 * starts.
 */
import { once } from "node:events";
import { join } from "node:path";
import type { Logger } from "pino";
import { NetworkPreparer } from "../claims/preparer.ts";
import { IpamRunner, IpamSandbox } from "../cni/index.ts";
import { errorMessage } from "../common/errors.ts";
import { ClaimState, DraPlugin } from "../dra/index.ts";
import { EngineThread } from "../engine/index.ts";
import { Inventory, netlinkLinkKinds, SysfsRoot } from "../inventory/index.ts";
import { agentCredentials, getServerVersion, KubeClient } from "../kube/index.ts";
import { linkEventSource, linkKindAvailable } from "../netlink/index.ts";
import { createNriPlugin } from "../nri/index.ts";
import { SlicePublisher } from "../slices/index.ts";
import { StateStore } from "../store/index.ts";
import { apiClaimConsumers, apiClaimSource, apiNadSource, apiPodSource, cdiPublisher, draPreparer, inventoryLookup } from "./claim-wiring.ts";
import type { AgentConfig } from "./config.ts";
import { AgentConfigError } from "./config.ts";
import { HttpEndpoints } from "./http-endpoints.ts";
import { DeviceTaints, deviceTaintsEnabled } from "./device-taints.ts";
import { InventoryHealth, RecoveryFindings } from "./inventory-health.ts";
import { loadInventoryMemory, rememberInventory } from "./inventory-memory.ts";
import { AttachActivity } from "./attach-activity.ts";
import { EventLoopBusy } from "./event-loop-busy.ts";
import { AgentMetrics } from "./metrics.ts";
import { NetworkStatusWriter } from "./network-status-writer.ts";
import { PodLinkWatch } from "./pod-links.ts";
import { PodNetwork } from "./pod-network.ts";
import { probeSocketPath, Readiness, unanswered } from "./probes.ts";
import { AttachmentRecovery } from "./recovery.ts";
import { ClaimStatusReporter } from "./status-reporter.ts";

/**
 * The nice value of the engine's thread. Its attaches run while the runtime
 * and the kubelet work on the same pod's sandbox and first container, and on
 * a 2-core node that work stretched the time to a configured interface
 * (docs/engine.md, "From RunPodSandbox to a configured interface"). The
 * thread's work is short bursts of syscalls, so it takes little from anyone.
 */
const ENGINE_THREAD_NICE = -15;

export interface AgentRuntime {
  logger: Logger;
  signal: AbortSignal;
}

export async function runAgent(config: AgentConfig, runtime: AgentRuntime): Promise<void> {
  const { logger, signal } = runtime;
  const nodeName = config.nodeName;
  if (nodeName === undefined) {
    throw new AgentConfigError("CONFIG_INVALID", "Cannot start the agent: nodeName is not set; set NODE_NAME (the DaemonSet does it from spec.nodeName) or --node-name");
  }
  await using stack = new AsyncDisposableStack();
  const metrics = new AgentMetrics();
  const loopBusy = EventLoopBusy.start();
  stack.defer(() => {
    loopBusy.stop();
  });
  metrics.trackEventLoop(loopBusy);
  const readiness = new Readiness();

  const store = await StateStore.open(config.stateDir);
  const client = KubeClient.create(agentCredentials(config.kubeconfig), {
    onError: (err) => {
      metrics.kubeRequestFailed(err);
    },
  });
  stack.defer(() => {
    client.close();
  });

  // The engine runs on a thread of its own, which also runs the agent's
  // other netlink requests (see engine/thread.ts). Which device sits in which
  // pod is a fact of this boot: a reboot empties every pod, so its journal
  // (in runtimeDir) must not outlive it, and skips fsync.
  const engine = new EngineThread({ dir: config.runtimeDir, durability: "restart", nice: ENGINE_THREAD_NICE });
  stack.defer(() => engine.close());
  await engine.start();
  metrics.trackThreadHeap("engine", () => engine.heapStatistics());
  if (engine.niceRefused !== undefined) {
    logger.warn(
      { nice: ENGINE_THREAD_NICE, errno: engine.niceRefused },
      "cannot raise the scheduling priority of the engine's thread (the container lacks CAP_SYS_NICE); interfaces take longer to be ready on a busy node (docs/engine.md)",
    );
  }
  // The pod's exec probes ask this agent's own socket (`netclaim probe`); the port, the node's, is
  // for Prometheus and people, and http.port 0 turns it off.
  const endpoints = await HttpEndpoints.start({
    socketPath: probeSocketPath(config),
    address: config.http.address,
    port: config.http.port === 0 ? undefined : config.http.port,
    notReady: () => readiness.missing(),
    // A batch of no operations is a round trip to the engine's thread and nothing more.
    notAlive: () => unanswered([{ name: "engine thread", ask: () => engine.batchAcross([]) }]),
    metrics: metrics.registry,
    logger: logger.child({ part: "http" }),
  });
  stack.defer(() => endpoints.close());
  // The kernel says whether RDMA devices follow their netdev into a pod ("exclusive") or stay
  // shared by every namespace; a node without RDMA netlink cannot say, and then nothing is moved.
  const rdmaMode = await engine.batch(undefined, [{ op: "rdmaNetnsMode" }] as const).then(
    ([mode]) => mode,
    (err: unknown) => {
      logger.warn({ err: errorMessage(err) }, "cannot read the RDMA subsystem's network namespace mode; treating it as shared, so RDMA devices stay visible to every namespace and are not moved into pods");
      return "shared" as const;
    },
  );

  const claims = new ClaimState(store, config.driverName);
  const status = new ClaimStatusReporter({
    client,
    driverName: config.driverName,
    poolName: nodeName,
    // Claims prepared before this start may hold status entries this reporter must carry on.
    earlierClaims: async () => (await claims.list()).map((record) => record.claim),
    logger: logger.child({ part: "status" }),
  });
  status.start();
  stack.defer(() => status.close());

  // What recovery finds of devices in pods is their health for the kubelet (inventory-health.ts).
  const findings = new RecoveryFindings();
  // Recovery reports through the pods' claims, and PodNetwork asks it to follow pods into new namespaces.
  const recovery: AttachmentRecovery = new AttachmentRecovery({
    engine: findings.observe(engine),
    owners: () => podNetwork.attachmentOwners(),
    status,
    logger: logger.child({ part: "recovery" }),
    onRecovered: () => podNetwork.refreshAttached(),
    onReattached: (attached) => podNetwork.recordReattached(attached),
  });
  // Opt-in: without it the agent never reads or writes a pod.
  const networkStatus = config.networkStatus.enabled
    ? new NetworkStatusWriter({ client, driverName: config.driverName, logger: logger.child({ part: "network-status" }) })
    : undefined;
  if (networkStatus !== undefined) stack.defer(() => networkStatus.close());
  // Device scans and pod link polls wait for pod starts under way (attach-activity.ts).
  const activity = new AttachActivity();
  const podNetwork: PodNetwork = new PodNetwork({ claims, engine: metrics.instrument(engine), netlink: engine, status, consumers: apiClaimConsumers(client), rdmaMode, nriPluginName: config.nri.pluginName, recovery, networkStatus, activity, logger: logger.child({ part: "pods" }) });
  stack.defer(() => podNetwork.settle());
  await recovery.run();
  recovery.start();
  stack.defer(() => recovery.close());

  const linkEvents = linkEventSource();
  metrics.trackThreadHeap("link-events", () => linkEvents.heapStatistics());
  const inventory = new Inventory({
    previous: await loadInventoryMemory(store, logger),
    root: config.inventory.root,
    policy: config.devices,
    // Netlink sees the agent's namespace, which /sys shows only at the real root.
    ...(config.inventory.root === "/" ? { linkKinds: netlinkLinkKinds(engine) } : {}),
    linkEvents,
    attached: podNetwork,
    resyncMs: config.inventory.resyncSeconds * 1000,
    quiet: () => activity.quiet(),
    onError: (err) => {
      logger.warn({ err: errorMessage(err) }, "device scan failed; keeping the last inventory");
    },
  });
  await inventory.start();
  stack.defer(() => inventory.stop());
  const memory = rememberInventory(inventory, store, logger);
  stack.defer(async () => {
    memory.stop();
    await memory.flush();
  });
  // Which devices are in pods changed: no link to read again (the moves' own events name them).
  podNetwork.onAttachedChange(() => {
    inventory.requestRescan([]);
  });

  // Device health, for the kubelet and for the devices' taints: the host's links, and the links
  // of devices in pods as their pods see them.
  const podLinks = new PodLinkWatch(engine, {
    quiet: () => activity.quiet(),
    onError: (err) => {
      logger.warn({ err: errorMessage(err) }, "cannot read the links of devices in pods; their health stays as last seen");
    },
  });
  podLinks.start();
  stack.defer(() => podLinks.close());
  const health = new InventoryHealth(inventory, nodeName, findings, podLinks);
  const taintDevices = await deviceTaintsEnabled(config.deviceTaints, () => getServerVersion(client), logger);

  const publisher = new SlicePublisher({
    client,
    driverName: config.driverName,
    nodeName,
    devices: inventory,
    taints: taintDevices ? new DeviceTaints(health, { driverName: config.driverName, effect: config.deviceTaints.effect }) : undefined,
    onError: (err) => {
      logger.warn({ err: errorMessage(err) }, "publishing ResourceSlices failed; retrying");
    },
  });
  readiness.track("ResourceSlices published", () => publisher.publishedOnce);
  metrics.trackDevices({
    published: () => publisher.slices().reduce((sum, slice) => sum + (slice.spec.devices?.length ?? 0), 0),
    prepared: async () => (await claims.list()).reduce((sum, record) => sum + (record.state === "prepared" ? record.devices.length : 0), 0),
    attached: () => podNetwork.attachedDevices().size,
  });
  await publisher.start();
  stack.defer(() => publisher.stop());

  const nri = createNriPlugin(podNetwork, {
    socketPath: config.nri.socketPath,
    pluginName: config.nri.pluginName,
    pluginIndex: config.nri.pluginIndex,
    // A request the agent dies while handling fails rather than goes on without it: in
    // particular a CreateContainer waiting for the pod's attach must not become a container
    // without its interfaces (the runtime's validator counts a plugin that was there when the
    // request began as present).
    failRequests: true,
    logger: logger.child({ part: "nri" }),
  });
  let everConnected = false;
  nri.onStateChange((state, cause) => {
    logger.info({ state, cause: cause === undefined ? undefined : errorMessage(cause) }, "NRI connection");
    if (state !== "connected") return;
    // Pods may have started or gone while the runtime was away: converge on what is journaled now.
    if (everConnected) recovery.request();
    everConnected = true;
  });
  readiness.track("connected to NRI", () => nri.state === "connected");
  metrics.trackNri(() => nri.state);
  nri.start();
  stack.defer(() => nri.close());

  // IPAM plugins get an empty network namespace of netclaim's own as CNI_NETNS, never the node's.
  const ipamSandbox = await IpamSandbox.open(join(config.runtimeDir, "ipam"));
  for (const { pid, command } of ipamSandbox.killedAtOpen) {
    logger.warn({ pid, command }, "killed an IPAM plugin a previous agent left running, before releasing any lease");
  }
  stack.defer(() => {
    ipamSandbox.close();
  });
  const preparer = new NetworkPreparer({
    driverName: config.driverName,
    poolName: nodeName,
    devices: inventoryLookup(() => inventory.current()),
    nads: apiNadSource(client),
    pods: apiPodSource(client),
    cdi: cdiPublisher(config.cdi.specDir, config.runtimeDir, { sysfs: new SysfsRoot(config.inventory.root), dev: join(config.inventory.root, "dev") }),
    store,
    ipam: new IpamRunner({
      pluginDirs: config.cni.binDirs,
      sandbox: ipamSandbox,
      policy: config.cni.ipam,
      timeoutMs: config.cni.ipam.timeoutSeconds * 1000,
    }),
    runtimeConnected: () => nri.state === "connected",
    kernelHasLinkKind: (kind) => linkKindAvailable(engine, kind),
    logger: logger.child({ part: "prepare" }),
  });
  const dra = await DraPlugin.start({
    driver: config.driverName,
    kubeletRootDir: config.kubelet.rootDir,
    podUID: config.kubelet.podUID,
    versions: config.kubelet.draVersions,
    store,
    claimSource: apiClaimSource(client),
    preparer: draPreparer(preparer, status, (plan) => { podNetwork.claimPrepared(plan); }),
    health,
    logger: logger.child({ part: "dra" }),
    metrics: metrics.dra,
  });
  stack.defer(() => dra.close());
  readiness.track("registered with the kubelet", () => dra.registrationStatus?.registered === true);

  logger.info(
    { driverName: config.driverName, nodeName, draSocket: dra.paths, nriSocket: config.nri.socketPath, rdmaMode },
    "netclaim agent started",
  );
  if (!signal.aborted) await once(signal, "abort");
  logger.info("netclaim agent stopping");
}
