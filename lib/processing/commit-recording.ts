import { StorageQuotaError } from '../errors/catalogue.ts';
import { recordStoredRecording } from '../observability/metrics.ts';
import { confirmQuota, recordUsage, releaseQuota } from '../storage/file-accounting.ts';
import { removeStoredObject } from '../storage/file-objects.ts';
import type { Manifest } from '../storage/manifest.ts';
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
 * - `taken_over`: another run took the file after this lease ran out; its result stands and
 *   this run's object is left to it (both sealed the same bytes, and each object carries its
 *   own key material, so whichever landed last is whole);
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
  try {
    await quotas.admit(owner, fileId, sealed.size, operation);
  } catch (error) {
    if (error instanceof StorageQuotaError) return { outcome: 'over_quota', error };
    throw error;
  }
  const held = await lease.stop();
  const { leaseUntil: _lease, reason: _reason, ...claimed } = held.manifest;
  const ready: Manifest = { ...claimed, status: 'ready', stored: storedAttributes(sealed), audio: sealed.audio, updatedAt: new Date().toISOString() };
  if ((await ctx.manifests.replace(ready, held.etag)) === undefined) {
    if ((await ctx.manifests.read(fileId)) !== undefined) return { outcome: 'taken_over' };
    await removeStoredObject(ctx, fileId, operation);
    await releaseQuota(ctx, owner, fileId, operation);
    return { outcome: 'deleted' };
  }
  await recordUsage(ctx, 'add', fileId, sealed.size, operation);
  const counted = await confirmQuota(ctx, owner, fileId, sealed.size, operation);
  recordStoredRecording(operation, sealed);
  return { outcome: 'ready', manifest: ready, counted };
}
