/**
 * cdi/: the CDI specs written when a claim is prepared, one per device, so
 * a container that uses the device gets its RDMA char devices and its attach
 * gate from the runtime. Prepare-time work: the composition root hands it to
 * claims/ as its CdiPublisher; the attach engine never reads a spec.
 */
export { CDI_KIND, CDI_VERSION, cdiDeviceId, GATE_CONTAINER_DIR, rdmaCharDevices, removeCdiSpec, writeCdiSpec, type CdiDeviceEdits, type CharDevice, type RdmaRoots } from "./cdi.ts";
