import { logger } from '../observability/logger.ts';
import { measured } from '../observability/metrics.ts';
import type { StorageContext } from '../storage/storage-context.ts';
import { objectCreatedRecords } from './event-records.ts';
import { processUploadRecord, type ProcessOutcome } from './process-upload.ts';

/**
 * Runs every object-created record of one event. Records are independent: one failing does
 * not stop the others; the first failure is rethrown at the end so the trigger retries the
 * event, and the records already done are skipped by their manifests on that retry.
 */
export async function processObjectCreatedEvent(ctx: StorageContext, event: unknown): Promise<{ results: ProcessOutcome[] }> {
  const records = objectCreatedRecords(event);
  const results: ProcessOutcome[] = [];
  let firstFailure: unknown;
  for (const record of records) {
    try {
      const outcome = await measured('ProcessUpload', () => processUploadRecord(ctx, record, 'event'));
      if (outcome.outcome === 'skipped' || outcome.outcome === 'deferred') {
        logger.info(`record ${outcome.outcome}`, { fileId: outcome.fileId, reason: outcome.reason });
      }
      results.push(outcome);
    } catch (error) {
      logger.error('record failed; it will be retried', { key: record.key, error: error as Error });
      firstFailure ??= error;
    }
  }
  if (firstFailure !== undefined) throw firstFailure;
  return { results };
}
