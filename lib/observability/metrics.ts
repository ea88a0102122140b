import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

/**
 * CloudWatch metrics as EMF through Powertools. Functions flush them with the `logMetrics`
 * middleware; the library only records. Per operation: count, latency, errors; plus bytes
 * stored and what encryption costs in time and size.
 */
export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Transcribo/Storage',
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'transcribo-storage',
});

export { MetricUnit };

/** Runs `fn` as the named operation: one count, one latency and, on failure, one error metric. */
export async function measured<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await fn();
  } catch (error) {
    metrics.addMetric(`${operation}Errors`, MetricUnit.Count, 1);
    throw error;
  } finally {
    metrics.addMetric(`${operation}Count`, MetricUnit.Count, 1);
    metrics.addMetric(`${operation}Latency`, MetricUnit.Milliseconds, performance.now() - started);
  }
}
