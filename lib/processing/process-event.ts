import { logger, withLogKeys } from '../observability/logger.ts';
import { fileIdFromIncomingKey } from '../storage/object-layout.ts';
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
    // Every line about this record, here and in what it calls, names its file.
    const fileId = fileIdFromIncomingKey(record.key);
    await withLogKeys(fileId === undefined ? { key: record.key } : { fileId }, async () => {
      try {
        const outcome = await measured('processUpload', () => processUploadRecord(ctx, record, 'event'));
        if (outcome.outcome === 'skipped' || outcome.outcome === 'deferred') {
          logger.info(`record ${outcome.outcome}`, { reason: outcome.reason });
        }
        results.push(outcome);
      } catch (error) {
        logger.error('record failed; it will be retried', { error: error as Error });
        firstFailure ??= error;
      }
    });
  }
  if (firstFailure !== undefined) throw firstFailure;
  return { results };
}
