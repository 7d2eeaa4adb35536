/**
 * store/: crash-safe state on disk (prepared claims, attachments, original
 * host state). See store.ts for the durability contract.
 */
export { Collection, StateStore, StoreError, type Durability, type StoreErrorCode } from "./store.ts";
export { FileLock } from "./file-lock.ts";
