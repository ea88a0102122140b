import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Context } from 'aws-lambda';
import { logger, operationLogKeys, perInvocationLogger } from '../lib/observability/logger.ts';
import { metrics } from '../lib/observability/metrics.ts';
import { withSecrets } from '../lib/secret-parameters.ts';
import { sweep } from '../lib/processing/sweep.ts';
import { sharedStorageContext } from '../lib/storage/storage-context.ts';

/** Time kept back for the file a sweep is on when it stops starting new ones. */
const MARGIN_MS = 120_000;

/** Scheduled (EventBridge when deployed, `npm start` locally): finds and finishes work no event brought. */
export const handler = perInvocationLogger(
  middy()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(operationLogKeys('sweep'))
    .use(logMetrics(metrics))
    .use(withSecrets(['encryptionKeys']))
    .handler(async (_event: unknown, context: Context) => {
      const report = await sweep(sharedStorageContext(), { deadline: Date.now() + context.getRemainingTimeInMillis() - MARGIN_MS });
      logger.info('sweep done', { ...report, processed: report.processed.length });
      return report;
    }),
);
