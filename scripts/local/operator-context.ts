import { configWithSecrets } from '../../lib/secret-parameters.ts';
import { createStorageContext, type StorageContext } from '../../lib/storage/storage-context.ts';
import { loadOrCreateDevSecrets } from './dev-secrets.ts';
import { loadLocalEnv } from './dot-env.ts';

/**
 * The storage as an operator's script reaches it (npm run rotate-keys, npm run purge): the
 * configuration of the shell, `.env` and `.local/minio.env`, as `npm start` reads it, with
 * npm start's local development keys where no keys are set; deployed, the stage's settings and
 * credentials, with the keys read from Parameter Store.
 */
export async function operatorContext(): Promise<StorageContext> {
  loadLocalEnv();
  process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN';
  if (!process.env.STORAGE_ENCRYPTION_KEYS && !process.env.STORAGE_ENCRYPTION_KEYS_PARAMETER && !process.env.STORAGE_ENCRYPTION_KMS_KEY_ID) {
    process.env.STORAGE_ENCRYPTION_KEYS = (await loadOrCreateDevSecrets()).encryptionKeys;
  }
  return createStorageContext(await configWithSecrets(['encryptionKeys']));
}
