/**
 * cdi/: the CDI specs written when a claim is prepared, one per device, so
 * a container that uses the device gets its RDMA char devices and its attach
 * gate from the runtime, and the device metadata files (KEP-5304) with their
 * CDI specs, one per request. Prepare-time work: the composition root hands
 * it to claims/ as its CdiPublisher; the attach engine never reads a spec.
 * The agent updates a metadata file once the device is in its pod.
 */
export { CDI_KIND, CDI_VERSION, cdiDeviceId, GATE_CONTAINER_DIR, rdmaCharDevices, removeCdiSpec, writeCdiSpec, type CdiDeviceEdits, type CharDevice, type RdmaRoots } from "./cdi.ts";
export {
  decodeDeviceMetadata, encodeDeviceMetadata, POD_CLAIM_NAME_ANNOTATION, publishClaimMetadata, recordNetworkData, removeClaimMetadata, updateNetworkData,
  type DeviceMetadata, type DeviceNetworkData, type MetadataClaim, type MetadataLocation,
} from "./device-metadata.ts";
