import { AbortMultipartUploadCommand } from '@aws-sdk/client-s3';
import { logger, withLogKeys } from '../observability/logger.ts';
import { METRIC } from '../observability/metric-names.ts';
import { measured, metrics, MetricUnit } from '../observability/metrics.ts';
import { backend } from '../storage/backend-errors.ts';
import { listMultipartUploads, listObjects } from '../storage/bucket-listing.ts';
import { removeStoredObject, removeUpload } from '../storage/file-objects.ts';
import { isSettled, type Manifest, type VersionedManifest } from '../storage/manifest.ts';
import { fileIdFromFinalKey, fileIdFromIncomingKey, FINAL_PREFIX, finalKey, INCOMING_PREFIX } from '../storage/object-layout.ts';
import type { PendingMarker } from '../storage/pending-index.ts';
import type { StorageContext } from '../storage/storage-context.ts';
import { settleQuota } from '../storage/owner-quotas.ts';
import { expireDeleted, recoveryEnabled, removeAllVersions } from '../storage/recovery.ts';
import { UsageLedger } from '../storage/usage-ledger.ts';
import { fileDeadLetter, processFile, type ProcessOutcome } from './process-upload.ts';

/**
 * The sweep: finds the work no event brought and the debris no run cleared, from two short
 * listings (the incoming bucket's uploads, and the pending markers of unsettled files, see
 * pending-index.ts) and the multipart uploads under way, never the whole catalogue.
 *
 * - An upload older than one lease with no live run (its event was lost, or the run that had
 *   it died) is processed here, as its event would have been.
 * - A settled or deleted file's leftover upload is removed; a failed file's upload is kept,
 *   and if the run that failed it died before filing its dead letter, the letter is filed.
 * - A file never uploaded is marked `expired` once its upload link has been expired for the
 *   grace period; a late upload is then removed by the processing rules.
 * - A file deleted before it settled: once no run can still be writing (two leases after the
 *   delete), any object a run completed anyway is removed, then its marker.
 * - A settled file still marked has its owner's quota entry settled (lib/storage/owner-quotas.ts):
 *   counted as stored if ready, given back if rejected or expired.
 * - A file deleted longer than the recovery window ago is purged: every version of it goes.
 * - A multipart upload of a stored object older than one lease, whose file no live run holds,
 *   is aborted (a killed run's parts). A client's resumable upload is aborted once its file no
 *   longer awaits it: settled, deleted, or past its upload window and grace (then `expired`).
 *
 * Every action is a conditional write or an idempotent delete, and processing goes through the
 * same claim as any event: two sweeps at once, or a sweep beside a redelivered event, cannot
 * both act on a file. A sweep stops starting new work near its deadline; the next one goes on.
 */

export interface SweepReport {
  processed: ProcessOutcome[];
  expired: number;
  uploadsRemoved: number;
  debrisRemoved: number;
  multipartAborted: number;
  markersCleared: number;
  lettersFiled: number;
  errors: number;
  /** Work was left for the next sweep because the deadline came. */
  unfinished: boolean;
  /** Age of the oldest upload that has landed and is still waiting for (or under) processing; 0 when none. */
  oldestWaitingSeconds: number;
  /** Deleted files purged because their recovery window had passed (lib/storage/recovery.ts). */
  purged: number;
  /** The usage ledger's totals after this sweep's fold (undefined if the fold failed). */
  usage: { bytes: number; files: number } | undefined;
}

export interface SweepOptions {
  /** Epoch ms after which no new file is started. */
  deadline?: number;
  /** Files processed at once (each is CPU-bound: hashing and encryption). */
  concurrency?: number;
  /** The time the sweep judges ages and leases by (epoch ms); tests look ahead with it. */
  now?: number;
}

export function sweep(ctx: StorageContext, options: SweepOptions = {}): Promise<SweepReport> {
  return measured('sweep', () => sweepOnce(ctx, options));
}

async function sweepOnce(ctx: StorageContext, options: SweepOptions): Promise<SweepReport> {
  const { config, manifests, pending } = ctx;
  const s3 = ctx.s3.internal;
  const now = options.now ?? Date.now();
  const leaseMs = config.processing.leaseSeconds * 1000;
  const awaitingMs = (config.uploadUrlTtlSeconds + config.sweep.uploadGraceSeconds) * 1000;
  const report: SweepReport = {
    processed: [],
    expired: 0,
    uploadsRemoved: 0,
    debrisRemoved: 0,
    multipartAborted: 0,
    markersCleared: 0,
    lettersFiled: 0,
    errors: 0,
    unfinished: false,
    oldestWaitingSeconds: 0,
    purged: 0,
    usage: undefined,
  };
  /** When each file still waiting landed (or, for one held by a run without an upload, was created): only what the listings and reads below learn anyway. */
  const waitingSince = new Map<string, number>();

  const uploads = new Map<string, Date>();
  for await (const object of listObjects(s3, config.incomingBucket, INCOMING_PREFIX)) {
    const fileId = fileIdFromIncomingKey(object.key);
    if (fileId !== undefined) uploads.set(fileId, object.lastModified);
  }
  const markers = new Map<string, PendingMarker>();
  for await (const marker of pending.list()) markers.set(marker.fileId, marker);

  const manifestCache = new Map<string, Promise<VersionedManifest | undefined>>();
  const readManifest = (fileId: string) => {
    let read = manifestCache.get(fileId);
    if (read === undefined) manifestCache.set(fileId, (read = manifests.read(fileId)));
    return read;
  };
  const leaseLive = (manifest: Manifest) =>
    manifest.status === 'processing' && manifest.leaseUntil !== undefined && Date.parse(manifest.leaseUntil) > now;

  const toProcess: string[] = [];

  /** Decides what one file needs; everything but processing is done at once. */
  async function examine(fileId: string): Promise<void> {
    const uploadedAt = uploads.get(fileId);
    const marker = markers.get(fileId);
    if (uploadedAt !== undefined) {
      // Younger than a lease: its event is (or was just) being handled; a sweep must not race it.
      if (now - uploadedAt.getTime() < leaseMs) {
        waitingSince.set(fileId, uploadedAt.getTime());
        return;
      }
      const found = await readManifest(fileId);
      const status = found?.manifest.status;
      if (status === undefined || isSettled(status)) {
        await removeUpload(ctx, fileId, 'sweep');
        report.uploadsRemoved++;
        if (marker !== undefined && status !== undefined) await settleAndClear(found!.manifest);
      } else if (status === 'failed') {
        if (marker !== undefined) await finishGivingUp(fileId, found!.manifest);
      } else {
        waitingSince.set(fileId, uploadedAt.getTime());
        if (!leaseLive(found!.manifest)) toProcess.push(fileId);
      }
      return;
    }
    if (marker === undefined) return;
    if (marker.deleted) {
      if (now - marker.since.getTime() < 2 * leaseMs) return;
      // In a versioned bucket a plain delete would keep the object as a version: a file deleted (or
      // purged) before it settled was never restorable, so nothing of what a run completed stays.
      if (recoveryEnabled(ctx)) await removeAllVersions(ctx, finalKey(fileId), 'sweep');
      else await removeStoredObject(ctx, fileId, 'sweep');
      report.debrisRemoved++;
      await clearMarker(fileId);
      return;
    }
    // No upload: the client may still be uploading until the link (and its grace) has expired.
    if (now - marker.since.getTime() < awaitingMs) return;
    const found = await readManifest(fileId);
    if (found === undefined) return clearMarker(fileId);
    const { manifest } = found;
    if (manifest.status === 'awaiting_upload') {
      if (Date.parse(manifest.uploadExpiresAt) + config.sweep.uploadGraceSeconds * 1000 > now) return;
      const { leaseUntil: _lease, ...rest } = manifest;
      const expired: Manifest = { ...rest, status: 'expired', reason: 'no upload arrived before the upload link expired', updatedAt: new Date().toISOString() };
      const written = await manifests.replace(expired, found.etag);
      if (written !== undefined) {
        report.expired++;
        metrics.addMetric(METRIC.uploadsExpired, MetricUnit.Count, 1);
        await settleAndClear(expired);
      }
    } else if (manifest.status === 'processing') {
      waitingSince.set(fileId, marker.since.getTime());
      if (!leaseLive(manifest)) toProcess.push(fileId);
    } else if (manifest.status === 'failed') {
      await finishGivingUp(fileId, manifest);
    } else {
      await settleAndClear(manifest);
    }
  }

  async function clearMarker(fileId: string): Promise<void> {
    await pending.remove(fileId);
    report.markersCleared++;
  }

  /** A settled file still marked: its quota entry first (the run that settled it may not have got there), then its marker. */
  async function settleAndClear(manifest: Manifest): Promise<void> {
    await settleQuota(ctx, manifest, 'sweep');
    await clearMarker(manifest.fileId);
  }

  /** A `failed` file still marked: the run that failed it died before filing its letter. */
  async function finishGivingUp(fileId: string, manifest: Manifest): Promise<void> {
    await fileDeadLetter(ctx, fileId, manifest.reason ?? 'processing failed');
    report.lettersFiled++;
    await clearMarker(fileId);
  }

  // Files are handled several at a time: each one's lines carry its own fileId.
  const guarded = (work: (fileId: string) => Promise<void>) => (fileId: string) =>
    withLogKeys({ fileId }, async () => {
      try {
        await work(fileId);
      } catch (error) {
        report.errors++;
        logger.error('sweep could not handle a file; the next sweep tries again', { error: error as Error });
      }
    });

  await eachLimited([...new Set([...uploads.keys(), ...markers.keys()])], 8, guarded(examine));

  await eachLimited(toProcess, options.concurrency ?? 2, guarded(async (fileId) => {
    if (options.deadline !== undefined && Date.now() > options.deadline) {
      report.unfinished = true;
      return;
    }
    const outcome = await processFile(ctx, fileId, 'sweep');
    report.processed.push(outcome);
    logger.info('sweep processed a file', { outcome: outcome.outcome, reason: 'reason' in outcome ? outcome.reason : undefined });
  }));

  // Multipart uploads left by runs that died, and by clients that never finished.
  for await (const upload of listMultipartUploads(s3, config.bucket, FINAL_PREFIX)) {
    const fileId = fileIdFromFinalKey(upload.key);
    if (now - upload.initiated.getTime() < leaseMs || fileId === undefined) continue;
    await guarded(async () => {
      manifestCache.delete(fileId); // processing above may have changed it
      const found = await readManifest(fileId);
      if (found !== undefined && leaseLive(found.manifest)) return;
      await abortMultipart(config.bucket, upload.key, upload.uploadId);
    })(fileId);
  }
  // A client's multipart upload stays while its file can still take it; anything else is debris.
  for await (const upload of listMultipartUploads(s3, config.incomingBucket, INCOMING_PREFIX)) {
    const age = now - upload.initiated.getTime();
    if (age < leaseMs) continue;
    const fileId = fileIdFromIncomingKey(upload.key);
    await guarded(async () => {
      if (fileId !== undefined) {
        manifestCache.delete(fileId); // expiring above may have changed it
        const found = await readManifest(fileId);
        if (found !== undefined && uploadStillOpen(found.manifest, upload.uploadId, age)) return;
      }
      await abortMultipart(config.incomingBucket, upload.key, upload.uploadId);
    })(fileId ?? upload.key);
  }

  /**
   * A file awaiting its upload, within its upload window and grace, keeps the multipart upload
   * bound to it; one it has not bound (a client that created it itself and has not sent a
   * part yet, or a second one) is kept only as long as a single upload link would be.
   */
  function uploadStillOpen(manifest: Manifest, uploadId: string, age: number): boolean {
    if (manifest.status !== 'awaiting_upload') return false;
    if (Date.parse(manifest.uploadExpiresAt) + config.sweep.uploadGraceSeconds * 1000 <= now) return false;
    return manifest.multipart?.uploadId === uploadId || age < awaitingMs;
  }

  async function abortMultipart(Bucket: string, Key: string, UploadId: string): Promise<void> {
    await backend('sweep', undefined, () => s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })));
    report.multipartAborted++;
  }

  // Deleted recordings whose recovery window has passed are gone for good.
  try {
    const expired = await expireDeleted(ctx, now);
    report.purged = expired.purged;
    report.errors += expired.errors;
  } catch (error) {
    report.errors++;
    logger.error('sweep could not purge deleted files past their recovery window; the next sweep tries again', { error: error as Error });
  }

  // Files this sweep settled wait no longer.
  for (const outcome of report.processed) {
    if (outcome.outcome === 'ready' || outcome.outcome === 'rejected' || outcome.outcome === 'failed') waitingSince.delete(outcome.fileId);
  }
  const oldest = Math.min(now, ...waitingSince.values());
  report.oldestWaitingSeconds = Math.max(0, Math.round((now - oldest) / 1000));
  metrics.addMetric(METRIC.oldestWaitingUpload, MetricUnit.Seconds, report.oldestWaitingSeconds);

  // Storage used: the ledger's changes since the last sweep, folded (lib/storage/usage-ledger.ts).
  try {
    const totals = await new UsageLedger(s3, config.bucket).fold(async (fileId) => {
      try {
        return (await manifests.read(fileId))?.manifest.status === 'ready';
      } catch (error) {
        logger.warn('usage fold: a manifest does not open; its change waits', { fileId, error: error as Error });
        return undefined;
      }
    });
    report.usage = { bytes: totals.bytes, files: totals.files };
    metrics.addMetric(METRIC.storageUsed, MetricUnit.Bytes, totals.bytes);
    metrics.addMetric(METRIC.storedFiles, MetricUnit.Count, totals.files);
  } catch (error) {
    report.errors++;
    logger.error('sweep could not fold the usage ledger; the next sweep tries again', { error: error as Error });
  }

  metrics.addMetric(METRIC.sweptUploads, MetricUnit.Count, report.processed.length);
  metrics.addMetric(METRIC.sweepErrors, MetricUnit.Count, report.errors);
  return report;
}

/** Runs `work` over `items`, at most `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(lanes);
}
