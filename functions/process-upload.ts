import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { logger, operationLogKeys, perInvocationLogger } from '../lib/observability/logger.ts';
import { metrics } from '../lib/observability/metrics.ts';
import { withSecrets } from '../lib/secret-parameters.ts';
import { processObjectCreatedEvent } from '../lib/processing/process-event.ts';
import { sharedStorageContext } from '../lib/storage/storage-context.ts';

/**
 * Object-created trigger on the incoming bucket (S3 notification, MinIO webhook or
 * EventBridge). Throws when a record failed for a reason worth retrying, so the trigger
 * redelivers; records already handled are skipped on the retry.
 */
export const handler = perInvocationLogger(
  middy()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(operationLogKeys('processUpload'))
    .use(logMetrics(metrics))
    .use(withSecrets(['encryptionKeys']))
    .handler(async (event: unknown) => processObjectCreatedEvent(sharedStorageContext(), event)),
);
