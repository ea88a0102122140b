import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { logger, operationLogKeys, perInvocationLogger } from '../lib/observability/logger.ts';
import { metrics } from '../lib/observability/metrics.ts';
import { withSecrets } from '../lib/secret-parameters.ts';
import { deadLetterStore } from '../lib/processing/dead-letters.ts';
import { redrive } from '../lib/processing/redrive.ts';
import { sharedStorageContext } from '../lib/storage/storage-context.ts';

/** Invoked by an operator (`npm run redrive` locally): processes the uploads dead letters name once more. */
export const handler = perInvocationLogger(
  middy()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(operationLogKeys('redrive'))
    .use(logMetrics(metrics))
    .use(withSecrets(['encryptionKeys']))
    .handler(async (event: unknown) => {
      const ctx = sharedStorageContext();
      const max = (event as { max?: unknown } | null)?.max;
      const report = await redrive(ctx, deadLetterStore(ctx.config, ctx.s3.internal), typeof max === 'number' ? { max } : {});
      logger.info('redrive done', { letters: report.letters, kept: report.kept, dropped: report.dropped });
      return report;
    }),
);
