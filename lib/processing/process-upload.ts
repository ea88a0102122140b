import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import type { StorageError } from '../errors/catalogue.ts';
import { logger } from '../observability/logger.ts';
import { METRIC } from '../observability/metric-names.ts';
import { metrics, MetricUnit } from '../observability/metrics.ts';
import { toStorageError } from '../storage/backend-errors.ts';
import { recordUsage, releaseQuota } from '../storage/file-accounting.ts';
import { headObject, removeStoredObject, removeUpload as removeUploadOf } from '../storage/file-objects.ts';
import { isSettled, type Manifest, type VersionedManifest } from '../storage/manifest.ts';
import { fileIdFromIncomingKey, incomingKey } from '../storage/object-layout.ts';
import type { StorageContext } from '../storage/storage-context.ts';
import { settleQuota } from '../storage/owner-quotas.ts';
import { deadLetterStore, letterForUpload } from './dead-letters.ts';
import type { ObjectCreatedRecord } from './event-records.ts';
import { Lease } from './lease.ts';
import { commitRecording } from './commit-recording.ts';
import { sealRecording } from './seal-recording.ts';
import { UploadRejection, type RejectionCode } from './upload-inspector.ts';

/**
 * What happens to one uploaded file. Three callers ask for it: the object-created event of its
 * upload, the sweep (for uploads no event brought, and runs that died), and a redrive of its
 * dead letter. Any of them may come twice, late, at once, or for a file already handled, so
 * every step is safe to repeat, and the manifest's conditional writes decide every race:
 *
 * 1. No manifest: the file was deleted: its upload is removed.
 *    Settled (ready, rejected, expired): a leftover or late upload, and the marker, are removed.
 *    Failed: left alone (its upload is kept for the redrive its dead letter asks for), except
 *    by a redrive, which starts a fresh round of attempts.
 * 2. Processing under a live lease: another run has it. The answer is `deferred`, not an error:
 *    if that run dies, its lease runs out and the sweep takes the file over.
 * 3. Attempts used up (runs that died count too): the file ends `failed` without another try.
 * 4. Claim: a conditional write sets `processing`, counts the attempt and takes a lease, which
 *    is renewed while the run works (lease.ts). Losing the race is `deferred` too.
 * 5. Seal (check, hash, encrypt, store). A content problem ends as `rejected` and removes the
 *    upload. A backend failure releases the lease and rethrows, so the trigger retries; after
 *    the last attempt the file ends `failed`, keeps its upload, and a dead letter is filed.
 * 6. Commit, as storeFile does (commit-recording.ts): the owner's quota again (over it, the file
 *    ends `rejected` and the object just sealed is removed), then `ready` conditionally on the
 *    lease's latest version, counted for its owner. If the file was deleted meanwhile, the new
 *    object is removed; if another run took over after our lease ran out, its result stands.
 *    Only then are the upload and the marker removed: a crash anywhere leaves something the
 *    sweep finds and finishes.
 */

export type ProcessOutcome =
  | { outcome: 'ready' | 'rejected' | 'failed'; fileId: string; reason?: string }
  | { outcome: 'deferred'; fileId: string; reason: string }
  | { outcome: 'skipped'; fileId?: string; reason: string };

export type ProcessTrigger = 'event' | 'sweep' | 'redrive';

/** Processes the upload an object-created record names; anything else is skipped. */
export function processUploadRecord(ctx: StorageContext, record: ObjectCreatedRecord, trigger: ProcessTrigger): Promise<ProcessOutcome> {
  const fileId = fileIdFromIncomingKey(record.key);
  if (record.bucket !== ctx.config.incomingBucket || fileId === undefined) {
    return Promise.resolve({ outcome: 'skipped', reason: 'not an upload' });
  }
  return processFile(ctx, fileId, trigger);
}

export async function processFile(ctx: StorageContext, fileId: string, trigger: ProcessTrigger): Promise<ProcessOutcome> {
  const { config, manifests, pending } = ctx;
  const s3 = ctx.s3.internal;
  const removeUpload = () => removeUploadOf(ctx, fileId, 'processUpload');
  const removeFinalObject = () => removeStoredObject(ctx, fileId, 'processUpload');

  const changedMeanwhile: ProcessOutcome = { outcome: 'deferred', fileId, reason: 'changed by another run meanwhile' };
  // The upload's size is asked for beside the manifest read: most runs need both, and in series they were half the fixed cost.
  const uploaded = headObject(s3, { Bucket: config.incomingBucket, Key: incomingKey(fileId) }, 'processUpload', fileId).then((head) => head && (head.ContentLength ?? 0));
  uploaded.catch(() => undefined);
  const current = await manifests.read(fileId);
  if (current === undefined) {
    await removeUpload();
    return { outcome: 'skipped', fileId, reason: 'no such file (deleted or never created)' };
  }
  const { manifest } = current;
  const releaseFileQuota = () => releaseQuota(ctx, manifest.owner, fileId, 'processUpload');
  if (isSettled(manifest.status)) {
    // Again, in case the run that made it ready died before its change: the fold counts a file once however often it is told.
    if (manifest.status === 'ready' && manifest.stored !== undefined) await recordUsage(ctx, 'add', fileId, manifest.stored.size, 'processUpload');
    // Likewise its quota entry: confirmed if ready, given back if rejected or expired (idempotent).
    await settleQuota(ctx, manifest, 'processUpload');
    await removeUpload();
    await pending.remove(fileId);
    return { outcome: 'skipped', fileId, reason: `already ${manifest.status}` };
  }
  if (manifest.status === 'failed' && trigger !== 'redrive') return { outcome: 'skipped', fileId, reason: 'already failed' };
  const now = Date.now();
  if (manifest.status === 'processing' && manifest.leaseUntil !== undefined && Date.parse(manifest.leaseUntil) > now) {
    return { outcome: 'deferred', fileId, reason: 'being processed by another run' };
  }

  const uploadedSize = await uploaded;
  if (uploadedSize === undefined) {
    // Processing needs the upload. A run that held the file without one was storing through the
    // library, or the upload was removed behind our back: there is nothing to process again.
    if (manifest.status !== 'processing') return { outcome: 'skipped', fileId, reason: 'no upload to process' };
    if (!(await giveUp(current, 'the upload is gone; there is nothing to process', { letter: false }))) return changedMeanwhile;
    await removeFinalObject();
    return { outcome: 'failed', fileId, reason: 'upload gone' };
  }

  if (trigger !== 'redrive' && manifest.attempts >= config.processing.maxAttempts) {
    // Runs that died (killed, out of memory, timed out) never wrote their failure: count them here.
    if (!(await giveUp(current, `processing did not finish after ${manifest.attempts} attempts`, { letter: true }))) return changedMeanwhile;
    return { outcome: 'failed', fileId, reason: 'attempts used up' };
  }

  const claimed: Manifest = {
    ...manifest,
    status: 'processing',
    attempts: (trigger === 'redrive' ? 0 : manifest.attempts) + 1,
    leaseUntil: Lease.until(config.processing.leaseSeconds, now),
    updatedAt: new Date(now).toISOString(),
  };
  delete claimed.reason;
  const claimEtag = await manifests.replace(claimed, current.etag);
  if (claimEtag === undefined) return changedMeanwhile;
  const lease = new Lease(manifests, { manifest: claimed, etag: claimEtag }, config.processing.leaseSeconds);

  /** The run's last manifest write, conditional on the lease's latest version. */
  const finish = async (next: Partial<Manifest>): Promise<boolean> => {
    const held = await lease.stop();
    const { leaseUntil: _lease, ...rest } = held.manifest;
    const etag = await manifests.replace({ ...rest, ...next, updatedAt: new Date().toISOString() }, held.etag);
    return etag !== undefined;
  };

  async function giveUp(from: VersionedManifest, reason: string, options: { letter: boolean }): Promise<boolean> {
    const { leaseUntil: _lease, ...rest } = from.manifest;
    const written = await manifests.replace({ ...rest, status: 'failed', reason, updatedAt: new Date().toISOString() }, from.etag);
    if (written === undefined) return false;
    await settleFailed(reason, options.letter);
    return true;
  }

  /** The file is `failed` now: its dead letter (when a redrive can help), then its marker, last so the sweep can finish. */
  async function settleFailed(reason: string, letter: boolean, error?: StorageError): Promise<void> {
    metrics.addMetric(METRIC.uploadsFailed, MetricUnit.Count, 1);
    if (letter) await fileDeadLetter(ctx, fileId, reason, error);
    await pending.remove(fileId);
  }

  async function reject(reason: string, code: RejectionCode | 'over_quota', options: { sealed?: boolean } = {}): Promise<ProcessOutcome> {
    if (!(await finish({ status: 'rejected', reason }))) return { outcome: 'skipped', fileId, reason: 'changed by another writer' };
    // Refused at the commit, the recording was already sealed: it goes, now that the file is rejected.
    if (options.sealed) await removeFinalObject();
    await releaseFileQuota();
    await removeUpload();
    await pending.remove(fileId);
    metrics.addMetric(METRIC.uploadsRejected, MetricUnit.Count, 1);
    metrics.addDimensioned({ reason: code }, METRIC.uploadsRejected, MetricUnit.Count, 1);
    logger.info('upload rejected', { fileId, reason });
    return { outcome: 'rejected', fileId, reason };
  }

  if (uploadedSize !== manifest.size) {
    return reject(`upload is ${uploadedSize} bytes but ${manifest.size} were declared`, 'size_mismatch');
  }

  const started = performance.now();
  let sealed;
  try {
    sealed = await sealRecording({
      s3,
      bucket: config.bucket,
      fileId,
      source: s3
        .send(new GetObjectCommand({ Bucket: config.incomingBucket, Key: incomingKey(fileId) }), { abortSignal: lease.signal })
        .then((object) => object.Body as Readable),
      extension: manifest.extension,
      expectedSize: manifest.size,
      maxSize: config.maxFileSize,
      declaredSha256: manifest.declaredSha256,
      keyring: ctx.keyring,
      signal: lease.signal,
    });
  } catch (error) {
    if (error instanceof UploadRejection) return reject(error.message, error.code);
    if (lease.signal.aborted) return lostLease();
    const storageError = toStorageError(error, 'processUpload', fileId);
    if (claimed.attempts >= config.processing.maxAttempts || trigger === 'redrive') {
      const reason = `processing failed after ${claimed.attempts} attempt${claimed.attempts === 1 ? '' : 's'} (${storageError.name})`;
      if (!(await finish({ status: 'failed', reason }))) return lostLease();
      // A redrive's failure keeps the letter that asked for it: no second one.
      await settleFailed(reason, trigger !== 'redrive', storageError);
      logger.error('upload failed for good; the upload is kept', { fileId, trigger, error: storageError });
      return { outcome: 'failed', fileId, reason: storageError.name };
    }
    // Release the lease so that the next delivery (or the sweep) can claim the file at once.
    const held = await lease.stop();
    await manifests.replace({ ...held.manifest, leaseUntil: new Date().toISOString() }, held.etag).catch(() => undefined);
    throw storageError;
  }

  async function lostLease(): Promise<ProcessOutcome> {
    await lease.stop();
    if ((await manifests.read(fileId)) === undefined) {
      // Deleted while we worked: the delete wins, and our object must not outlive it, nor its room.
      await removeFinalObject();
      await removeUpload();
      await releaseFileQuota();
      return { outcome: 'skipped', fileId, reason: 'deleted while processing' };
    }
    // Taken over after our lease ran out: this run stopped before its object became visible
    // (the part writer completes only under a live lease), so the other run's object stands.
    return { outcome: 'skipped', fileId, reason: 'taken over by another run' };
  }

  let committed;
  try {
    committed = await commitRecording(ctx, { owner: manifest.owner, fileId, lease, sealed, operation: 'processUpload' });
  } catch (error) {
    // Release the lease so that the next delivery (or the sweep) can claim the file at once.
    const held = await lease.stop();
    await manifests.replace({ ...held.manifest, leaseUntil: new Date().toISOString() }, held.etag).catch(() => undefined);
    throw toStorageError(error, 'processUpload', fileId);
  }
  if (committed.outcome === 'over_quota') return reject(committed.error.message, 'over_quota', { sealed: true });
  if (committed.outcome === 'deleted') {
    await removeUpload();
    return { outcome: 'skipped', fileId, reason: 'deleted while processing' };
  }
  if (committed.outcome === 'taken_over') return { outcome: 'skipped', fileId, reason: 'taken over by another run' };
  await removeUpload();
  // If the file could not be counted for its owner, the marker stays and the sweep counts it.
  if (committed.counted) await pending.remove(fileId);

  const elapsedMs = performance.now() - started;
  metrics.addMetric(METRIC.uploadsReady, MetricUnit.Count, 1);
  logger.info('upload stored', { fileId, trigger, size: sealed.size, storedSize: sealed.storedSize, elapsedMs: Math.round(elapsedMs) });
  return { outcome: 'ready', fileId };
}

/** Files the dead letter of a `failed` file: a record naming its upload, for redrive. */
export async function fileDeadLetter(ctx: StorageContext, fileId: string, reason: string, error?: StorageError): Promise<void> {
  await deadLetterStore(ctx.config, ctx.s3.internal).put(
    letterForUpload(ctx.config.incomingBucket, fileId, { errorType: error?.name ?? 'ProcessingFailed', errorMessage: reason }),
  );
  metrics.addMetric(METRIC.deadLetters, MetricUnit.Count, 1);
  logger.error('dead letter filed', { fileId, reason });
}

