import { loadConfig, requireSecrets, type StorageConfig } from '../config.ts';
import { Keyring } from '../crypto/keyring.ts';
import { kmsKeyProvider } from '../crypto/kms-key-provider.ts';
import { ManifestStore } from './manifest.ts';
import { PendingIndex } from './pending-index.ts';
import { createS3Clients, type S3Clients } from './s3-clients.ts';

/** Everything the storage operations share: configuration, clients, keys, manifests. Built once per configuration. */
export interface StorageContext {
  config: StorageConfig;
  s3: S3Clients;
  manifests: ManifestStore;
  pending: PendingIndex;
  /** Undefined when encryption is off; throws a configuration error when it is on and the keys are missing. */
  readonly keyring: Keyring | undefined;
}

export function createStorageContext(config: StorageConfig): StorageContext {
  const s3 = createS3Clients(config);
  let keyring: Keyring | undefined;
  const ctx: StorageContext = {
    config,
    s3,
    manifests: new ManifestStore(s3.internal, config.bucket, () => ctx.keyring),
    pending: new PendingIndex(s3.internal, config.bucket),
    // Built on first use: a function that never seals or opens a recording never needs the keys,
    // and one that does fails with a configuration error rather than ever storing in the clear.
    get keyring() {
      if (!config.encryption.enabled) return undefined;
      requireSecrets(config, ['encryptionKeys']);
      const { keys, activeKeyId, kmsKeyId } = config.encryption;
      keyring ??= new Keyring(keys, activeKeyId, kmsKeyId === undefined ? undefined : kmsKeyProvider(kmsKeyId));
      return keyring;
    },
  };
  return ctx;
}

let shared: StorageContext | undefined;

export function sharedStorageContext(): StorageContext {
  const config = loadConfig();
  // A new configuration only when a secret read at run time has changed (a rotated key).
  if (shared?.config !== config) shared = createStorageContext(config);
  return shared;
}
