import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  type ObjectVersion,
  type DeleteMarkerEntry,
} from '@aws-sdk/client-s3';
import { backend } from './backend-errors.ts';
import { listObjects } from './bucket-listing.ts';
import { headObject, storedSealId } from './file-objects.ts';
import type { Manifest } from './manifest.ts';
import { DELETED_PREFIX, deletedKey, finalKey, isFileId, manifestKey, pendingKey } from './object-layout.ts';
import { ownerTag } from './owner-tags.ts';
import type { StorageContext } from './storage-context.ts';
import { StorageFileNotFoundError, StorageMetadataError, StorageOperationError } from '../errors/catalogue.ts';
import { logger } from '../observability/logger.ts';

/**
 * The recovery window: a deleted recording can be brought back for STORAGE_RECOVERY_WINDOW_DAYS,
 * then it is gone for good; an owner (or an operator) may purge it at once.
 *
 * The final bucket is versioned (scripts/local/storage-setup.ts wherever the product runs on
 * MinIO, the template on S3), with a lifecycle that expires noncurrent versions after the window.
 * Deleting a `ready` file first writes
 *
 *   deleted/<owner tag>/<fileId>    empty; its LastModified is when the file was deleted
 *
 * (an owner's deleted files are one prefix listing, with no owner named: owner-tags.ts), then
 * puts delete markers over `manifests/<id>.json`, then over `files/<id>`: the sealed manifest and
 * recording stay as they were, as the versions under the markers. A delete cut short anywhere
 * is thus a file listed and restorable, or purged once its window has passed. One cut between
 * the manifest and the recording leaves the recording current, which a process holding the
 * file's ready manifest in its cache (lib/service/ready-manifests.ts) would still serve, for
 * that cache's TTL at most: the delete's retry finds the entry and no manifest, and removes the
 * recording then (`finishDeletion`) before it answers, as a delete that was not cut does.
 *
 * - Restore opens the last manifest version first (only its owner may restore it, only a
 *   `ready` one), checks that the recording version under its marker is the one that manifest
 *   describes (its seal id), then removes the recording's markers, then the manifest's: the very
 *   versions deleted are current again (same bytes, ETag, seal id and fileId). It counts the file
 *   again and removes the entry last, so a restore cut short is finished by the next.
 * - An id with any manifest version is in use (storage-service.ts storeFile), whoever its
 *   owner: a restore or purge never meets another owner's file under it.
 * - Purge removes every version and marker of the manifest, then of the recording, then the
 *   entry (last, so that a purge cut short is found and finished by the next one).
 * - The sweep purges what has been deleted longer than the window (`expireDeleted`): that a
 *   recording is gone once the window has passed is this code's promise, tested; the lifecycle
 *   rule is what clears every other noncurrent version (older manifests, markers, ledgers).
 *
 * With a window of 0 the bucket is not versioned (a one-day rule drains one versioned before):
 * a delete is final, and only the sweep's purge of entries left from before runs here.
 */

export interface DeletedEntry {
  fileId: string;
  deletedAt: Date;
  restorableUntil: Date;
}

/** The versions and delete markers of one key, newest first. */
interface KeyHistory {
  versions: ObjectVersion[];
  markers: DeleteMarkerEntry[];
}

export const recoveryEnabled = (ctx: StorageContext) => ctx.config.recoveryWindowDays > 0;

export const windowEnd = (ctx: StorageContext, deletedAt: Date) => new Date(deletedAt.getTime() + ctx.config.recoveryWindowDays * 86_400_000);

/** Written before a ready file's objects are deleted: a delete cut short still leaves the file restorable. */
export async function recordDeletion(ctx: StorageContext, owner: string, fileId: string, operation: string): Promise<void> {
  const Key = deletedKey(await ownerTag(ctx, owner), fileId);
  await backend(operation, fileId, () => ctx.s3.internal.send(new PutObjectCommand({ Bucket: ctx.config.bucket, Key, Body: '', ContentLength: 0 })));
}

/**
 * The recording of a deleted file no longer current (a delete marker over it), if it still is:
 * the end of a delete cut short after its manifest went. Nothing is written when it is gone
 * already, so repeated deletes do not stack markers.
 */
export async function finishDeletion(ctx: StorageContext, fileId: string, operation: string): Promise<void> {
  if (!(await isCurrent(ctx, finalKey(fileId), operation))) return;
  logger.warn('a delete cut short left the recording current; it goes now', { fileId, operation });
  const marker = await backend(operation, fileId, () =>
    ctx.s3.internal.send(new DeleteObjectCommand({ Bucket: ctx.config.bucket, Key: finalKey(fileId) })),
  );
  // A restore may have brought the manifest back meanwhile (it uncovers the recording first, the
  // manifest last): then this marker would hide a restored file's bytes. It goes again; the
  // restore, for its part, looks at the recording once more after the manifest (restoreFile).
  if (marker.VersionId !== undefined && (await ctx.manifests.read(fileId)) !== undefined) {
    await backend(operation, fileId, () =>
      ctx.s3.internal.send(new DeleteObjectCommand({ Bucket: ctx.config.bucket, Key: finalKey(fileId), VersionId: marker.VersionId })),
    );
  }
}

/** Whether the key has a current version (no delete marker on top). */
async function isCurrent(ctx: StorageContext, key: string, operation: string): Promise<boolean> {
  return (await headObject(ctx.s3.internal, { Bucket: ctx.config.bucket, Key: key }, operation)) !== undefined;
}

/** The recording current again if a marker went on it after `undeleteRecording` (see finishDeletion). */
export async function ensureRecordingCurrent(ctx: StorageContext, manifest: Manifest, operation: string): Promise<void> {
  if (!(await isCurrent(ctx, finalKey(manifest.fileId), operation))) await undeleteRecording(ctx, manifest, operation);
}

/** The owner's deleted files still inside the window, newest deletion first. */
export async function listDeleted(ctx: StorageContext, owner: string, now = Date.now()): Promise<DeletedEntry[]> {
  if (!recoveryEnabled(ctx)) return [];
  const prefix = `${DELETED_PREFIX}${await ownerTag(ctx, owner)}/`;
  const entries: DeletedEntry[] = [];
  for await (const object of listObjects(ctx.s3.internal, ctx.config.bucket, prefix)) {
    const fileId = object.key.slice(prefix.length);
    if (!isFileId(fileId)) continue;
    const restorableUntil = windowEnd(ctx, object.lastModified);
    if (restorableUntil.getTime() > now) entries.push({ fileId, deletedAt: object.lastModified, restorableUntil });
  }
  return entries.sort((a, b) => b.deletedAt.getTime() - a.deletedAt.getTime());
}

/**
 * The owner's entry for a deleted file, whatever its age (a purge takes one past its window that
 * the sweep has not reached yet); `restorableUntil` says whether it may still be restored.
 */
export async function deletedEntry(ctx: StorageContext, owner: string, fileId: string, operation: string): Promise<(DeletedEntry & { key: string }) | undefined> {
  if (!recoveryEnabled(ctx)) return undefined;
  const key = deletedKey(await ownerTag(ctx, owner), fileId);
  const head = await headObject(ctx.s3.internal, { Bucket: ctx.config.bucket, Key: key }, operation, fileId);
  if (head === undefined) return undefined;
  const deletedAt = head.LastModified ?? new Date(0);
  return { key, fileId, deletedAt, restorableUntil: windowEnd(ctx, deletedAt) };
}

/**
 * The last manifest a deleted file had (the newest version under its delete markers), opened;
 * undefined when none is left, or when that version is the current one (the file is live: not deleted, or restored).
 */
export async function lastManifest(ctx: StorageContext, fileId: string, operation: string): Promise<Manifest | undefined> {
  const history = await keyHistory(ctx, manifestKey(fileId), operation);
  const newest = history.versions[0];
  if (newest?.VersionId === undefined || newest.IsLatest === true) return undefined;
  return (await ctx.manifests.read(fileId, { versionId: newest.VersionId }))?.manifest;
}

/**
 * Makes the deleted file's recording current again (`undeleteManifest` then makes it visible).
 * The caller has checked the owner and the status of `manifest` (`lastManifest`). Safe to repeat:
 * a recording already current (the delete removed the manifest first and was cut short, or a
 * restore was) has no marker to remove. No recording left, or another one than the manifest
 * describes (its seal id): the file cannot be restored, never served with other bytes.
 */
export async function undeleteRecording(ctx: StorageContext, manifest: Manifest, operation: string): Promise<void> {
  const { fileId } = manifest;
  const recording = await keyHistory(ctx, finalKey(fileId), operation);
  const newest = recording.versions[0]?.VersionId;
  if (newest === undefined) throw new StorageFileNotFoundError('No deleted file with this id can be restored.', { operation, fileId });
  const sealId = await storedSealId(ctx, fileId, operation, newest);
  // Manifests of version 1 recorded no seal id; their recordings may carry none.
  if (manifest.stored?.sealId !== undefined && sealId !== manifest.stored.sealId) {
    throw new StorageMetadataError('The deleted recording no longer matches its manifest; it cannot be restored.', { operation, fileId });
  }
  await removeMarkers(ctx, finalKey(fileId), recording, operation);
}

/** The manifest's delete markers removed: the file is visible again, as it was. */
export async function undeleteManifest(ctx: StorageContext, fileId: string, operation: string): Promise<void> {
  await removeMarkers(ctx, manifestKey(fileId), await keyHistory(ctx, manifestKey(fileId), operation), operation);
}

/** Whether any version or delete marker of the file's manifest exists: its id has been used. */
export async function idEverUsed(ctx: StorageContext, fileId: string, operation: string): Promise<boolean> {
  const history = await keyHistory(ctx, manifestKey(fileId), operation);
  return history.versions.length + history.markers.length > 0;
}

/** Removes the owner's entry of a deleted file (every version of it). */
export async function forgetDeletion(ctx: StorageContext, owner: string, fileId: string, operation: string): Promise<void> {
  await removeAllVersions(ctx, deletedKey(await ownerTag(ctx, owner), fileId), operation);
}

/**
 * Every version of a file's manifest first (a purge cut short is then neither listed nor
 * restorable), then of its recording, then its deleted entry, if a key of it is given (last, so
 * that the next purge or sweep finds what is left). The pending marker goes too, unless the file
 * was deleted before it settled: that marker is how the sweep finds an object a run still
 * completes after the purge (sweep.ts removes every version of it then).
 */
export async function purgeVersions(ctx: StorageContext, fileId: string, entryKey: string | undefined, operation: string, options: { keepPendingMarker?: boolean } = {}): Promise<void> {
  const keys = [manifestKey(fileId), finalKey(fileId), ...(options.keepPendingMarker === true ? [] : [pendingKey(fileId)])];
  for (const key of keys) await removeAllVersions(ctx, key, operation);
  if (entryKey !== undefined) await removeAllVersions(ctx, entryKey, operation);
}

/** Every version and delete marker of exactly `key`. */
export async function removeAllVersions(ctx: StorageContext, key: string, operation: string): Promise<void> {
  const history = await keyHistory(ctx, key, operation);
  await removeVersionIds(ctx, key, [...history.markers, ...history.versions].map((v) => v.VersionId), operation);
}

/** The entry of a deleted file, whoever its owner: for an operator's erasure request (scripts/purge.ts). */
export async function findDeletedEntryKey(ctx: StorageContext, fileId: string): Promise<string | undefined> {
  for await (const object of listObjects(ctx.s3.internal, ctx.config.bucket, DELETED_PREFIX)) {
    if (object.key.endsWith(`/${fileId}`)) return object.key;
  }
  return undefined;
}

/**
 * The sweep's part: purges every file deleted longer than the window ago. A file restored whose
 * entry was left behind (a restore cut short after its manifest came back) keeps its objects:
 * only the entry goes.
 */
export async function expireDeleted(ctx: StorageContext, now: number, operation = 'sweep'): Promise<{ purged: number; errors: number }> {
  // Whatever the window: one set back to 0 leaves entries of files deleted before, now all past it.
  const report = { purged: 0, errors: 0 };
  for await (const object of listObjects(ctx.s3.internal, ctx.config.bucket, DELETED_PREFIX)) {
    if (windowEnd(ctx, object.lastModified).getTime() > now) continue;
    const fileId = object.key.slice(object.key.lastIndexOf('/') + 1);
    if (!isFileId(fileId)) continue;
    try {
      if ((await ctx.manifests.read(fileId)) === undefined) await purgeVersions(ctx, fileId, object.key, operation);
      else await removeAllVersions(ctx, object.key, operation);
      report.purged++;
    } catch (error) {
      // One file that cannot be handled (a manifest that does not open) must not hold up the others.
      report.errors++;
      logger.error('a deleted file past its recovery window could not be purged; the next sweep tries again', { fileId, error: error as Error });
    }
  }
  return report;
}

/** Every version and delete marker of exactly `key` (a listing by prefix, filtered to the key), newest first as S3 lists them. */
export async function keyHistory(ctx: StorageContext, key: string, operation: string): Promise<KeyHistory> {
  const history: KeyHistory = { versions: [], markers: [] };
  let KeyMarker: string | undefined;
  let VersionIdMarker: string | undefined;
  do {
    const page = await backend(operation, undefined, () =>
      ctx.s3.internal.send(new ListObjectVersionsCommand({ Bucket: ctx.config.bucket, Prefix: key, KeyMarker, VersionIdMarker })),
    );
    history.versions.push(...(page.Versions ?? []).filter((v) => v.Key === key));
    history.markers.push(...(page.DeleteMarkers ?? []).filter((m) => m.Key === key));
    KeyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    VersionIdMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
  } while (KeyMarker);
  // S3 lists a key's versions newest first (LastModified has only second precision: not a sort key).
  return history;
}

async function removeMarkers(ctx: StorageContext, key: string, history: KeyHistory, operation: string): Promise<void> {
  await removeVersionIds(ctx, key, history.markers.map((m) => m.VersionId), operation);
}

/** Removes the given versions of `Key`, a thousand to a request (DeleteObjects): a purge of a key with many versions is one call, not one a version. */
async function removeVersionIds(ctx: StorageContext, Key: string, versionIds: (string | undefined)[], operation: string): Promise<void> {
  const objects = versionIds.filter((VersionId) => VersionId !== undefined).map((VersionId) => ({ Key, VersionId }));
  for (let start = 0; start < objects.length; start += 1000) {
    const out = await backend(operation, undefined, () =>
      ctx.s3.internal.send(new DeleteObjectsCommand({ Bucket: ctx.config.bucket, Delete: { Objects: objects.slice(start, start + 1000), Quiet: true } })),
    );
    // A version another restore or purge removed first is no failure.
    const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchVersion' && e.Code !== 'NoSuchKey');
    if (failed.length > 0) {
      throw new StorageOperationError('The storage backend refused to remove versions of a file.', { operation, details: { key: Key, code: failed[0]!.Code } });
    }
  }
}
