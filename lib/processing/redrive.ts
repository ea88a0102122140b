import { logger, withLogKeys } from '../observability/logger.ts';
import { METRIC } from '../observability/metric-names.ts';
import { measured, metrics, MetricUnit } from '../observability/metrics.ts';
import type { StorageContext } from '../storage/storage-context.ts';
import type { DeadLetterStore } from './dead-letters.ts';
import { fileIdFromIncomingKey } from '../storage/object-layout.ts';
import { objectCreatedRecords } from './event-records.ts';
import { processUploadRecord, type ProcessOutcome } from './process-upload.ts';

/**
 * Redrive: processes the uploads that dead letters name once more, after an operator has fixed
 * what made them fail. Each file gets one fresh attempt (a `failed` file is claimed again with
 * its count reset). A letter is removed once every file it names is settled or deleted; it stays
 * (and is reported) while any of its files still fails or is in another run's hands, so running
 * redrive again, or twice at once, is always safe.
 */

export interface RedriveReport {
  letters: number;
  outcomes: ProcessOutcome[];
  /** Letters kept because a file they name still fails. */
  kept: number;
  /** Letters removed that named no upload (nothing can ever be done with them). */
  dropped: number;
}

export function redrive(ctx: StorageContext, store: DeadLetterStore, options: { max?: number } = {}): Promise<RedriveReport> {
  return measured('redrive', () => redriveLetters(ctx, store, options));
}

async function redriveLetters(ctx: StorageContext, store: DeadLetterStore, options: { max?: number }): Promise<RedriveReport> {
  const report: RedriveReport = { letters: 0, outcomes: [], kept: 0, dropped: 0 };
  for await (const received of store.receive(options.max ?? 100)) {
    report.letters++;
    const letter = received.letter as { requestPayload?: unknown } | undefined;
    const records = objectCreatedRecords(letter?.requestPayload ?? letter);
    if (records.length === 0) {
      logger.warn('dead letter names no upload; removed', { letter: received.id });
      await received.ack();
      report.dropped++;
      continue;
    }
    let keep = false;
    for (const record of records) {
      const fileId = fileIdFromIncomingKey(record.key);
      await withLogKeys(fileId === undefined ? { key: record.key } : { fileId }, async () => {
        try {
          const outcome = await processUploadRecord(ctx, record, 'redrive');
          report.outcomes.push(outcome);
          // Deferred: another run (perhaps another redrive) has the file, and may fail it again.
          if (outcome.outcome === 'failed' || outcome.outcome === 'deferred') keep = true;
        } catch (error) {
          keep = true;
          logger.error('redrive of a file failed; its dead letter is kept', { letter: received.id, error: error as Error });
        }
      });
    }
    if (keep) report.kept++;
    else await received.ack();
  }
  metrics.addMetric(METRIC.deadLettersRedriven, MetricUnit.Count, report.letters - report.kept);
  return report;
}
