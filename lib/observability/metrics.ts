import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { StorageError } from '../errors/catalogue.ts';
import { METRIC, NAMESPACE } from './metric-names.ts';

/**
 * CloudWatch metrics as EMF through Powertools, by the names and dimensions of
 * metric-names.ts. Functions flush them with the `logMetrics` middleware; the library only
 * records (a backend that uses the library directly calls `metrics.publishStoredMetrics()`).
 *
 * EMF gives every metric of one JSON line the same dimension sets, so a metric that needs
 * dimensions of its own ([service, operation], [service, command]…) cannot share the shared
 * instance's buffer, which is [service] only and must stay so (nothing calls `addDimension` on
 * it). Such metrics go to a buffer per dimension set (`addDimensioned`), and those buffers are
 * published with the shared one: still one line per dimension set per invocation, not one per
 * value as `singleMetric()` would write.
 *
 * Counting requests exactly once. `measured` wraps every operation of the library and of
 * processing (the storage service's methods, processUpload, sweep, redrive): Requests and
 * Latency per call, Errors and ErrorsByType when it throws, and it remembers the errors it
 * counted. An HTTP function calls exactly one of those methods, under the same operation name,
 * so its request is counted there. What `measured` never sees is a request refused before the
 * service is called (401 from the auth middleware, 400 from the body, a secret that cannot be
 * read): the HTTP error middleware (`catalogueErrors.onError`) hands every error to
 * `recordRefusal`, which counts it as a request and an error unless `measured` already did.
 * Counting at the HTTP layer instead would leave the library's own callers (storeFile, a
 * backend calling getFile) uncounted. getFile fails after its service call only while its body
 * is read; that failure is counted as an error of the call (`recordLateFailure`), not as a
 * second request. One case stays double-counted: a request middy answers 504 while its service
 * call is still running is a refusal, and the call counts itself when it ends.
 */
const namespace = process.env.POWERTOOLS_METRICS_NAMESPACE ?? NAMESPACE;
const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? 'transcribo-storage';

class ProductMetrics extends Metrics {
  readonly #buffers = new Map<string, Metrics>();

  /** Records a value under [service, ...dimensions]; published with this instance. */
  addDimensioned(dimensions: Record<string, string>, name: string, unit: (typeof MetricUnit)[keyof typeof MetricUnit], value: number): void {
    const key = JSON.stringify(Object.entries(dimensions).sort(([a], [b]) => a.localeCompare(b)));
    let buffer = this.#buffers.get(key);
    if (buffer === undefined) {
      buffer = new Metrics({ namespace, serviceName, defaultDimensions: dimensions });
      this.#buffers.set(key, buffer);
    }
    buffer.addMetric(name, unit, value);
  }

  override publishStoredMetrics(): this {
    // Checked first: an empty buffer would warn about empty metrics on every flush.
    for (const buffer of this.#buffers.values()) if (buffer.hasStoredMetrics()) buffer.publishStoredMetrics();
    return super.publishStoredMetrics();
  }
}

export const metrics = new ProductMetrics({ namespace, serviceName });

export { MetricUnit };

/** The catalogue type a caller was answered with; anything else is `InternalError`. */
export function errorTypeOf(error: unknown): string {
  if (error instanceof StorageError) return error.name;
  // middy's early timeout: the caller gets StorageTimeoutError (lib/http/error-response.ts).
  if ((error as { name?: unknown } | null)?.name === 'TimeoutError') return 'StorageTimeoutError';
  return 'InternalError';
}

const counted = new WeakSet<object>();

function remember(error: unknown): void {
  if (typeof error === 'object' && error !== null) counted.add(error);
}

function recordErrors(operation: string, error: unknown): void {
  metrics.addDimensioned({ operation }, METRIC.errors, MetricUnit.Count, 1);
  metrics.addDimensioned({ operation, errorType: errorTypeOf(error) }, METRIC.errorsByType, MetricUnit.Count, 1);
  metrics.addMetric(METRIC.errors, MetricUnit.Count, 1);
  remember(error);
}

function recordRequest(operation: string, latencyMs: number | undefined): void {
  metrics.addDimensioned({ operation }, METRIC.requests, MetricUnit.Count, 1);
  // [service] alone: the denominator of the error-rate alarm, whatever the operation.
  metrics.addMetric(METRIC.requests, MetricUnit.Count, 1);
  if (latencyMs !== undefined) metrics.addDimensioned({ operation }, METRIC.latency, MetricUnit.Milliseconds, latencyMs);
}

/** Runs `fn` as the named operation (camelCase, as its function is named): one request, its latency and, if it throws, one error. */
export async function measured<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    const result = await fn();
    recordRequest(operation, performance.now() - started);
    return result;
  } catch (error) {
    recordRequest(operation, performance.now() - started);
    if (!counted.has(error as object)) recordErrors(operation, error);
    throw error;
  }
}

/**
 * A request that failed without `measured` counting it (refused before the service was
 * called): one request and one error. No latency: the refusal's time is the middlewares', not
 * the operation's. Called once per failed HTTP request, by the HTTP error middleware.
 */
export function recordRefusal(operation: string, error: unknown): void {
  if (typeof error === 'object' && error !== null && counted.has(error)) return;
  recordRequest(operation, undefined);
  recordErrors(operation, error);
}

/** Plaintext bytes an operation served (getFile). */
export function recordBytesRead(operation: string, bytes: number): void {
  metrics.addMetric(METRIC.bytesRead, MetricUnit.Bytes, bytes);
  metrics.addDimensioned({ operation }, METRIC.bytesRead, MetricUnit.Bytes, bytes);
}

/** An operation whose call succeeded but whose result then failed (a body stream): an error, not a second request. */
export function recordLateFailure(operation: string, error: unknown): void {
  if (typeof error === 'object' && error !== null && counted.has(error)) return;
  recordErrors(operation, error);
}

/** A recording that became ready (processed upload or storeFile): what it stores and what encryption cost. */
export function recordStoredRecording(operation: string, sealed: { size: number; storedSize: number; encrypted: boolean; encryptMs: number }): void {
  metrics.addMetric(METRIC.bytesStored, MetricUnit.Bytes, sealed.size);
  metrics.addDimensioned({ operation }, METRIC.bytesStored, MetricUnit.Bytes, sealed.size);
  metrics.addMetric(METRIC.fileSize, MetricUnit.Bytes, sealed.size);
  if (sealed.encrypted) {
    metrics.addMetric(METRIC.encryptionTime, MetricUnit.Milliseconds, sealed.encryptMs);
    metrics.addMetric(METRIC.encryptionOverhead, MetricUnit.Bytes, sealed.storedSize - sealed.size);
  }
}
