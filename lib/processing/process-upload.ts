import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { logger } from '../observability/logger.ts';
import { metrics, MetricUnit } from '../observability/metrics.ts';
import { backend, isNotFound, toStorageError } from '../storage/backend-errors.ts';
import type { Manifest } from '../storage/manifest.ts';
import { fileIdFromIncomingKey, finalKey, incomingKey } from '../storage/object-layout.ts';
import type { StorageContext } from '../storage/storage-context.ts';
import type { ObjectCreatedRecord } from './event-records.ts';
import { sealRecording, storedAttributes } from './seal-recording.ts';
import { UploadRejection } from './upload-inspector.ts';

/**
 * What happens to one uploaded object. Events may come twice, late, out of order, or for
 * objects already handled, so every step is safe to repeat:
 *
 * 1. No manifest: the file was deleted (or never created): the upload is removed.
 * 2. Manifest ready or rejected: the work is done; a leftover or re-sent upload is removed.
 *    Manifest failed: left alone, the upload kept for a later sweep.
 * 3. Manifest processing under a live lease: another run has it; skip.
 * 4. Claim: a conditional write sets `processing`, counts the attempt and takes a lease.
 *    Losing that race means another run has it; skip.
 * 5. Seal (check, hash, encrypt, store). A content problem ends as `rejected` and removes the
 *    upload. A backend failure releases the lease and rethrows, so the trigger retries;
 *    after the last attempt the file ends as `failed` and the upload stays.
 * 6. Commit `ready` conditionally. If the file was deleted meanwhile, the new object is
 *    removed; if another run took over after our lease ran out, its result stands. Only then
 *    is the upload deleted: nothing is lost if a step fails.
 */

export type ProcessOutcome =
  | { outcome: 'ready' | 'rejected' | 'failed'; fileId: string; reason?: string }
  | { outcome: 'skipped'; fileId?: string; reason: string };

export async function processUpload(ctx: StorageContext, record: ObjectCreatedRecord): Promise<ProcessOutcome> {
  const { config, manifests } = ctx;
  const s3 = ctx.s3.internal;
  const uploadFileId = fileIdFromIncomingKey(record.key);
  if (record.bucket !== config.incomingBucket || uploadFileId === undefined) {
    return { outcome: 'skipped', reason: 'not an upload' };
  }
  const fileId: string = uploadFileId;
  const removeUpload = () =>
    backend('deleteUpload', fileId, () =>
      s3.send(new DeleteObjectCommand({ Bucket: config.incomingBucket, Key: incomingKey(fileId) })),
    );

  const current = await manifests.read(fileId);
  if (current === undefined) {
    await removeUpload();
    return { outcome: 'skipped', fileId, reason: 'no such file (deleted or never created)' };
  }
  const { manifest } = current;
  if (manifest.status === 'ready' || manifest.status === 'rejected') {
    await removeUpload();
    return { outcome: 'skipped', fileId, reason: `already ${manifest.status}` };
  }
  if (manifest.status === 'failed') return { outcome: 'skipped', fileId, reason: 'already failed' };
  const now = Date.now();
  if (manifest.status === 'processing' && manifest.leaseUntil !== undefined && Date.parse(manifest.leaseUntil) > now) {
    return { outcome: 'skipped', fileId, reason: 'being processed by another run' };
  }

  let uploadedSize: number;
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: config.incomingBucket, Key: incomingKey(fileId) }));
    uploadedSize = head.ContentLength ?? 0;
  } catch (error) {
    if (isNotFound(error)) return { outcome: 'skipped', fileId, reason: 'upload already gone' };
    throw toStorageError(error, 'processUpload', fileId);
  }

  const claimed: Manifest = {
    ...manifest,
    status: 'processing',
    attempts: manifest.attempts + 1,
    leaseUntil: new Date(now + config.processing.leaseSeconds * 1000).toISOString(),
    updatedAt: new Date(now).toISOString(),
  };
  const claimEtag = await manifests.replace(claimed, current.etag);
  if (claimEtag === undefined) return { outcome: 'skipped', fileId, reason: 'claimed by another run' };

  const finish = async (next: Partial<Manifest>): Promise<boolean> => {
    const { leaseUntil: _lease, ...rest } = claimed;
    const etag = await manifests.replace({ ...rest, ...next, updatedAt: new Date().toISOString() }, claimEtag);
    return etag !== undefined;
  };

  if (uploadedSize !== manifest.size) {
    return reject(`upload is ${uploadedSize} bytes but ${manifest.size} were declared`);
  }

  async function reject(reason: string): Promise<ProcessOutcome> {
    await finish({ status: 'rejected', reason });
    await removeUpload();
    metrics.addMetric('UploadsRejected', MetricUnit.Count, 1);
    logger.info('upload rejected', { fileId, reason });
    return { outcome: 'rejected', fileId, reason };
  }

  const started = performance.now();
  let sealed;
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: config.incomingBucket, Key: incomingKey(fileId) }));
    sealed = await sealRecording({
      s3,
      bucket: config.bucket,
      fileId,
      source: object.Body as Readable,
      extension: manifest.extension,
      expectedSize: manifest.size,
      maxSize: config.maxFileSize,
      declaredSha256: manifest.declaredSha256,
      keyring: ctx.keyring,
    });
  } catch (error) {
    if (error instanceof UploadRejection) return reject(error.message);
    const storageError = toStorageError(error, 'processUpload', fileId);
    if (claimed.attempts >= config.processing.maxAttempts) {
      await finish({ status: 'failed', reason: `processing failed after ${claimed.attempts} attempts` });
      metrics.addMetric('UploadsFailed', MetricUnit.Count, 1);
      logger.error('upload failed for good; the upload is kept', { fileId, error: storageError });
      return { outcome: 'failed', fileId, reason: storageError.name };
    }
    // Release the lease so the trigger's retry can claim it at once.
    await manifests.replace({ ...claimed, leaseUntil: new Date().toISOString() }, claimEtag).catch(() => undefined);
    throw storageError;
  }

  const committed = await finish({
    status: 'ready',
    stored: storedAttributes(sealed),
  });
  if (!committed) {
    if ((await manifests.read(fileId)) !== undefined) {
      // Our lease ran out and another run took the file over. Both sealed the same bytes and each
      // object carries its own key material, so whichever object landed last is whole: leave it.
      return { outcome: 'skipped', fileId, reason: 'taken over by another run' };
    }
    // Deleted while we worked: the delete wins, and our object must not outlive it.
    await backend('deleteObject', fileId, () => s3.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: finalKey(fileId) })));
    await removeUpload();
    return { outcome: 'skipped', fileId, reason: 'deleted while processing' };
  }
  await removeUpload();

  const elapsedMs = performance.now() - started;
  metrics.addMetric('BytesStored', MetricUnit.Bytes, sealed.size);
  metrics.addMetric('ProcessingLatency', MetricUnit.Milliseconds, elapsedMs);
  if (sealed.encrypted) {
    metrics.addMetric('EncryptionTime', MetricUnit.Milliseconds, sealed.encryptMs);
    metrics.addMetric('EncryptionOverheadBytes', MetricUnit.Bytes, sealed.storedSize - sealed.size);
  }
  logger.info('upload stored', { fileId, size: sealed.size, storedSize: sealed.storedSize, elapsedMs: Math.round(elapsedMs) });
  return { outcome: 'ready', fileId };
}
