import { loadConfig, type StorageConfig } from '../config.ts';
import { Keyring } from '../crypto/keyring.ts';
import { ManifestStore } from './manifest.ts';
import { PendingIndex } from './pending-index.ts';
import { createS3Clients, type S3Clients } from './s3-clients.ts';

/** Everything the storage operations share: configuration, clients, keys, manifests. Built once per process. */
export interface StorageContext {
  config: StorageConfig;
  s3: S3Clients;
  manifests: ManifestStore;
  pending: PendingIndex;
  keyring: Keyring | undefined;
}

export function createStorageContext(config: StorageConfig): StorageContext {
  const s3 = createS3Clients(config);
  return {
    config,
    s3,
    manifests: new ManifestStore(s3.internal, config.bucket),
    pending: new PendingIndex(s3.internal, config.bucket),
    keyring: config.encryption.enabled ? new Keyring(config.encryption.keys, config.encryption.activeKeyId) : undefined,
  };
}

let shared: StorageContext | undefined;

export function sharedStorageContext(): StorageContext {
  shared ??= createStorageContext(loadConfig());
  return shared;
}
