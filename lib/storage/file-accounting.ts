import { logger } from '../observability/logger.ts';
import { OwnerQuotas } from './owner-quotas.ts';
import type { StorageContext } from './storage-context.ts';
import { UsageLedger } from './usage-ledger.ts';

/**
 * A file's bookkeeping after the fact that decides it (its manifest) is written: its change in the
 * usage ledger and its owner's quota entry. Neither may take the caller's answer away, so a failure
 * is logged and left to what repairs it: the totals miss the file until a delivery or the sweep
 * finds it again, an unconfirmed quota keeps the pending marker for the sweep, and a reservation
 * not given back runs out, or is dropped by the audit before the owner's next refusal (owner-quotas.ts).
 */

export async function recordUsage(ctx: StorageContext, kind: 'add' | 'remove', fileId: string, bytes: number, operation: string): Promise<void> {
  await new UsageLedger(ctx.s3.internal, ctx.config.bucket)
    .record(kind, fileId, bytes, operation)
    .catch((error: unknown) => logger.error('usage change not recorded; the totals miss this file', { fileId, operation, error: error as Error }));
}

/** Counts a ready file as stored for its owner; false (logged) when that failed, for the sweep to do. */
export function confirmQuota(ctx: StorageContext, owner: string, fileId: string, bytes: number, operation: string): Promise<boolean> {
  return new OwnerQuotas(ctx).confirm(owner, fileId, bytes, operation).then(
    () => true,
    (error: unknown) => {
      logger.error('quota not confirmed; the sweep confirms it', { fileId, operation, error: error as Error });
      return false;
    },
  );
}

export async function releaseQuota(ctx: StorageContext, owner: string, fileId: string, operation: string): Promise<void> {
  await new OwnerQuotas(ctx)
    .release(owner, fileId, operation)
    .catch((error: unknown) => logger.error('quota not given back; its reservation runs out, or an audit drops it at the owner\'s next refusal', { fileId, operation, error: error as Error }));
}
