import { StorageQuotaError } from '../errors/catalogue.ts';
import { recordStoredRecording } from '../observability/metrics.ts';
import { confirmQuota, recordUsage, releaseQuota } from '../storage/file-accounting.ts';
import { removeStoredObject, storedSealId } from '../storage/file-objects.ts';
import { logger } from '../observability/logger.ts';
import type { Manifest, VersionedManifest } from '../storage/manifest.ts';
import { OwnerQuotas } from '../storage/owner-quotas.ts';
import type { StorageContext } from '../storage/storage-context.ts';
import type { Lease } from './lease.ts';
import { storedAttributes, type SealResult } from './seal-recording.ts';

/**
 * The end of the one write path, for a processed upload and for `storeFile` alike: a sealed
 * recording becomes its file's truth only by a conditional write of `ready` on the version the
 * run's lease last wrote. Its outcomes, each settled here the same way for both callers:
 *
 * - `over_quota`: the owner's quota, checked again at the commit, has no room; nothing is
 *   written and the lease still runs (the caller records the refusal its own way);
 * - `deleted`: the manifest went while the recording was sealed: the delete wins, the object
 *   just sealed is removed and the file's room given back;
 * - `taken_over`: another run took the file after this lease ran out; its result stands. Both
 *   runs sealed the same bytes, each under its own key and seal id, and this run's object may
 *   have landed after the other's: then the manifest is pointed at the object that is there
 *   (same plaintext, size and hash; this run's seal id), or every read would refuse it;
 * - `ready`: counted in the usage ledger and in the owner's quota. `counted` is false when the
 *   quota could not be confirmed: the pending marker must then stay for the sweep to count it.
 */

export type CommitOutcome =
  | { outcome: 'ready'; manifest: Manifest; counted: boolean }
  | { outcome: 'over_quota'; error: StorageQuotaError }
  | { outcome: 'deleted' }
  | { outcome: 'taken_over' };

export async function commitRecording(
  ctx: StorageContext,
  run: { owner: string; fileId: string; lease: Lease; sealed: SealResult; operation: string },
): Promise<CommitOutcome> {
  const { owner, fileId, lease, sealed, operation } = run;
  const quotas = new OwnerQuotas(ctx);
  const deleted = async (): Promise<CommitOutcome> => {
    await lease.stop();
    await removeStoredObject(ctx, fileId, operation);
    await releaseQuota(ctx, owner, fileId, operation);
    return { outcome: 'deleted' };
  };
  try {
    await quotas.admit(owner, fileId, sealed.size, operation);
  } catch (error) {
    if (!(error instanceof StorageQuotaError)) throw error;
    // Deleted meanwhile, the delete decides, not the quota: nothing of the file may stay.
    if ((await ctx.manifests.read(fileId)) === undefined) return deleted();
    return { outcome: 'over_quota', error };
  }
  const held = await lease.stop();
  const { leaseUntil: _lease, reason: _reason, ...claimed } = held.manifest;
  const ready: Manifest = { ...claimed, status: 'ready', stored: storedAttributes(sealed), audio: sealed.audio, updatedAt: new Date().toISOString() };
  if ((await ctx.manifests.replace(ready, held.etag)) === undefined) {
    const now = await ctx.manifests.read(fileId);
    if (now !== undefined) {
      await keepLastObjectDescribed(ctx, now, sealed, operation);
      return { outcome: 'taken_over' };
    }
    return deleted();
  }
  await recordUsage(ctx, 'add', fileId, sealed.size, operation);
  const counted = await confirmQuota(ctx, owner, fileId, sealed.size, operation);
  recordStoredRecording(operation, sealed);
  return { outcome: 'ready', manifest: ready, counted };
}

/** After a takeover: if the object in place is this run's, the winner's manifest is made to describe it (conditionally). */
async function keepLastObjectDescribed(ctx: StorageContext, current: VersionedManifest, sealed: SealResult, operation: string): Promise<void> {
  const { manifest } = current;
  const stored = manifest.stored;
  if (manifest.status !== 'ready' || stored === undefined || stored.sealId === sealed.sealId) return;
  if ((await storedSealId(ctx, manifest.fileId, operation)) !== sealed.sealId) return;
  if (stored.sha256 !== sealed.sha256 || stored.size !== sealed.size) {
    logger.error('a run that lost its file left a different recording in place', { fileId: manifest.fileId, operation });
    return;
  }
  await ctx.manifests.replace({ ...manifest, stored: storedAttributes(sealed), updatedAt: new Date().toISOString() }, current.etag);
}
