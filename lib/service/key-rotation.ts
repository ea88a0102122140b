import { randomBytes } from 'node:crypto';
import { CopyObjectCommand } from '@aws-sdk/client-s3';
import { decodeEncryptionMetadata, encodeEncryptionMetadata } from '../crypto/frame-format.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { StorageOperationError } from '../errors/catalogue.ts';
import { logger } from '../observability/logger.ts';
import { backend, isPreconditionFailed } from '../storage/backend-errors.ts';
import { listObjects } from '../storage/bucket-listing.ts';
import { headObject } from '../storage/file-objects.ts';
import type { Manifest } from '../storage/manifest.ts';
import { finalKey, isFileId, SEAL_ID_METADATA } from '../storage/object-layout.ts';
import { readTagKey, writeTagKey } from '../storage/owner-tags.ts';
import type { StorageContext } from '../storage/storage-context.ts';

/**
 * Key rotation (`npm run rotate-keys`): brings every key the final bucket holds under the active
 * key-encryption key, so that older KEKs can be removed from the configuration.
 *
 * For each manifest, one file at a time:
 * 1. Its stored object, if the object's data key is wrapped by another KEK (or the object has no
 *    seal id yet): a metadata-only copy of the object onto itself, with the data key re-wrapped
 *    and everything else (frames, nonce prefix, seal id) unchanged. It is conditional on the ETag
 *    just read, so an object changed meanwhile is left to the next run. The bytes do not move
 *    through this process; S3 and MinIO copy them in place.
 * 2. Its manifest, if sealed by another KEK or not sealed at all (version 1, from before manifests
 *    were sealed, or written while encryption was off): rewritten, which seals it under the
 *    active KEK with a fresh key; conditional on the ETag read, re-read and retried if a request
 *    changed the file meanwhile.
 * Then the owner-tag key (owner-tags.ts) is re-wrapped the same way.
 *
 * Each step is idempotent and decided afresh from what is stored, so a run that is killed is
 * simply run again, and a second run over a rotated bucket writes nothing. The object is done
 * before its manifest, so a file is readable at every moment: both KEKs are still configured
 * while the run lasts.
 */

export interface RotationReport {
  files: number;
  objectsRewrapped: number;
  manifestsResealed: number;
  ownerTagKeyRewrapped: boolean;
  /** Files left for another run (changed while being rotated, or failed): fileId and why. */
  left: Array<{ fileId: string; reason: string }>;
}

export async function rotateKeys(ctx: StorageContext, onFile?: (fileId: string, done: string[]) => void): Promise<RotationReport> {
  const keyring = ctx.keyring;
  if (keyring === undefined) {
    throw new StorageOperationError('Encryption is off (STORAGE_ENCRYPTION_ENABLED=false): there are no keys to rotate.', { operation: 'rotateKeys' });
  }
  const report: RotationReport = { files: 0, objectsRewrapped: 0, manifestsResealed: 0, ownerTagKeyRewrapped: false, left: [] };
  for await (const { key } of listObjects(ctx.s3.internal, ctx.config.bucket, 'manifests/')) {
    const fileId = key.slice('manifests/'.length, -'.json'.length);
    if (!isFileId(fileId) || key !== `manifests/${fileId}.json`) continue;
    report.files++;
    try {
      const done = await rotateFile(ctx, keyring, fileId, report);
      onFile?.(fileId, done);
    } catch (error) {
      report.left.push({ fileId, reason: (error as Error).message });
      logger.warn('rotation left a file for the next run', { fileId, error: error as Error });
    }
  }
  report.ownerTagKeyRewrapped = await rotateOwnerTagKey(ctx, keyring);
  return report;
}

async function rotateFile(ctx: StorageContext, keyring: Keyring, fileId: string, report: RotationReport): Promise<string[]> {
  const done: string[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const found = await ctx.manifests.read(fileId, { unsealed: 'accept' });
    if (found === undefined) return done; // deleted meanwhile
    let { manifest } = found;
    if (manifest.stored !== undefined) {
      const sealId = await rotateObject(ctx, keyring, manifest);
      if (sealId.rewrapped) {
        report.objectsRewrapped++;
        done.push('object re-wrapped');
      }
      if (sealId.value !== undefined && manifest.stored.sealId !== sealId.value) {
        manifest = { ...manifest, stored: { ...manifest.stored, sealId: sealId.value } };
      }
    }
    if (found.kekId === keyring.activeId && manifest === found.manifest) return done;
    if ((await ctx.manifests.replace(manifest, found.etag)) !== undefined) {
      report.manifestsResealed++;
      done.push('manifest sealed under the active key');
      return done;
    }
  }
  throw new Error('the file kept changing while it was being rotated');
}

/**
 * Re-wraps the stored object's data key if it needs it, and gives it a seal id if it has none.
 * Returns the object's seal id (undefined if there is no object).
 */
async function rotateObject(ctx: StorageContext, keyring: Keyring, manifest: Manifest): Promise<{ value: string | undefined; rewrapped: boolean }> {
  const { fileId } = manifest;
  const s3 = ctx.s3.internal;
  const Key = finalKey(fileId);
  const head = await headObject(s3, { Bucket: ctx.config.bucket, Key }, 'rotateKeys', fileId);
  if (head === undefined) return { value: undefined, rewrapped: false };
  const metadata = { ...(head.Metadata ?? {}) };
  let changed = false;
  let rewrapped = false;
  if (metadata[SEAL_ID_METADATA] === undefined) {
    metadata[SEAL_ID_METADATA] = manifest.stored?.sealId ?? randomBytes(16).toString('base64url');
    changed = true;
  }
  if (manifest.stored?.encrypted) {
    const encryption = decodeEncryptionMetadata(metadata, fileId);
    const moved = await keyring.rewrap({ kekId: encryption.kekId, wrappedKey: encryption.wrappedKey }, fileId);
    if (moved !== undefined) {
      Object.assign(metadata, encodeEncryptionMetadata({ ...encryption, ...moved }));
      changed = rewrapped = true;
    }
  }
  if (!changed) return { value: metadata[SEAL_ID_METADATA], rewrapped };
  try {
    await s3.send(
      new CopyObjectCommand({
        Bucket: ctx.config.bucket,
        Key,
        CopySource: `${ctx.config.bucket}/${Key}`,
        CopySourceIfMatch: head.ETag,
        MetadataDirective: 'REPLACE',
        Metadata: metadata,
        ContentType: head.ContentType,
      }),
    );
  } catch (error) {
    if (isPreconditionFailed(error)) throw new Error('its stored object changed while it was being rotated');
    throw error;
  }
  return { value: metadata[SEAL_ID_METADATA], rewrapped };
}

async function rotateOwnerTagKey(ctx: StorageContext, keyring: Keyring): Promise<boolean> {
  const s3 = ctx.s3.internal;
  const stored = await readTagKey(s3, ctx.config.bucket);
  if (stored === undefined) return false;
  const moved = await keyring.rewrap(stored.wrapped);
  if (moved === undefined) return false;
  await backend('rotateOwnerTagKey', undefined, () => writeTagKey(s3, ctx.config.bucket, moved, { IfMatch: stored.etag }));
  return true;
}
