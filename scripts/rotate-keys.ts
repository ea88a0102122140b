/**
 * `npm run rotate-keys`: re-wraps every data key of the final bucket (recordings, manifests, the
 * owner-tag key) under the active key-encryption key, and seals manifests written before
 * manifests were sealed (lib/service/key-rotation.ts). Run it after making a new key active
 * (or after setting STORAGE_ENCRYPTION_KMS_KEY_ID), with the old keys still configured; once it
 * reports nothing left, the old keys can be removed.
 *
 * It talks to the storage directly with the configuration of the shell, `.env` and
 * `.local/minio.env`, as `npm start` does (and with npm start's local development keys when no
 * keys are set); deployed, run it with the stage's settings and credentials, where
 * STORAGE_ENCRYPTION_KEYS_PARAMETER names the keys in Parameter Store. Safe to run twice, and to
 * run again after it was stopped. Exits 1 if a file was left for another run.
 */
import { ConfigError } from '../lib/config.ts';
import { operatorContext } from './local/operator-context.ts';
import { StorageError } from '../lib/errors/catalogue.ts';
import { rotateKeys } from '../lib/service/key-rotation.ts';

try {
  const ctx = await operatorContext();
  console.log(`rotating ${ctx.config.bucket} to key "${ctx.keyring?.activeId}" (keys known: ${ctx.keyring?.ids.join(', ')})`);
  const report = await rotateKeys(ctx, (fileId, done) => {
    if (done.length > 0) console.log(`${fileId}: ${done.join(', ')}`);
  });
  console.log(
    `${report.files} files: ${report.objectsRewrapped} recordings re-wrapped, ${report.manifestsResealed} manifests sealed anew` +
      `${report.ownerTagKeyRewrapped ? ', owner-tag key re-wrapped' : ''}; ${report.left.length} left for another run`,
  );
  for (const { fileId, reason } of report.left) console.log(`  left: ${fileId}: ${reason}`);
  process.exit(report.left.length > 0 ? 1 : 0);
} catch (error) {
  const known = error instanceof ConfigError || error instanceof StorageError;
  process.stderr.write(`rotate-keys: ${known ? (error as Error).message : String(error)}\n`);
  process.exit(2);
}
