import type { S3Client } from '@aws-sdk/client-s3';
import type { DeserializeHandlerArguments, DeserializeMiddleware, HandlerExecutionContext } from '@smithy/types';
import { METRIC } from './metric-names.ts';
import { metrics, MetricUnit } from './metrics.ts';

/**
 * Time waiting on S3/MinIO, per command, measured in one place: a middleware on every client
 * (s3-clients.ts) rather than timers around each call site.
 *
 * It sits in the `deserialize` step, the innermost one, so:
 * - it times each attempt's round trip on its own: the retry middleware (finalizeRequest) is
 *   outside it, and a command retried twice records three latencies, which is what the storage
 *   server cost. Signing, and the retry's back-off, are not counted;
 * - presigning never reaches it (the presigner answers in finalizeRequest without sending), so
 *   signing a URL records nothing;
 * - for a streaming body (GetObject) the request handler resolves when the response headers
 *   arrive: the latency is the time to the first byte, not to the last. Reading the body is the
 *   caller's time (processing's Latency, getFile's).
 *
 * StorageErrors counts the attempts where the server gave no usable answer: no response
 * (refused, reset, timed out), 5xx, and 401/403 (our credentials). A 404, 412 or 304 is an
 * answer the code asks for (a manifest that does not exist, a conditional write that lost its
 * race) and counting it would make the metric useless for alarms; other 4xx are counted.
 */

const EXPECTED_ANSWERS = new Set([304, 404, 412]);

function commandOf(context: HandlerExecutionContext): string {
  return (context.commandName ?? 'Unknown').replace(/Command$/, '');
}

function isStorageFailure(error: unknown): boolean {
  const status = (error as { $metadata?: { httpStatusCode?: number }; $response?: { statusCode?: number } } | null)?.$metadata?.httpStatusCode
    ?? (error as { $response?: { statusCode?: number } } | null)?.$response?.statusCode;
  return status === undefined || !EXPECTED_ANSWERS.has(status);
}

export const storageLatencyMiddleware: DeserializeMiddleware<object, object> = (next, context) => async (args: DeserializeHandlerArguments<object>) => {
  const command = commandOf(context);
  const started = performance.now();
  try {
    return await next(args);
  } catch (error) {
    if (isStorageFailure(error)) metrics.addDimensioned({ command }, METRIC.storageErrors, MetricUnit.Count, 1);
    throw error;
  } finally {
    metrics.addDimensioned({ command }, METRIC.storageLatency, MetricUnit.Milliseconds, performance.now() - started);
  }
};

/** Adds the middleware to a client (once: a second add under the same name would throw). */
export function measureStorageLatency(client: S3Client): S3Client {
  client.middlewareStack.add(storageLatencyMiddleware as never, { step: 'deserialize', name: 'transcriboStorageLatency', priority: 'high' });
  return client;
}
