import { describe, expect, it } from 'vitest';
import { METRIC } from '../../lib/observability/metric-names.ts';
import { formatStats, histogram, parseEmf, parseEmfLine, percentile, summarize } from '../../scripts/local/metrics-stats.ts';

/** One EMF line in Powertools' shape, with the contract's names: dimensions as top-level keys, a repeated metric as an array. */
function emf(dimensions: Record<string, string>, metrics: Record<string, { unit: string; value: number | number[] }>, timestamp = 1_700_000_000_000): string {
  const all = { service: 'transcribo-storage', ...dimensions };
  return JSON.stringify({
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [{ Namespace: 'Transcribo/Storage', Dimensions: [Object.keys(all)], Metrics: Object.entries(metrics).map(([Name, m]) => ({ Name, Unit: m.unit })) }],
    },
    ...all,
    ...Object.fromEntries(Object.entries(metrics).map(([name, m]) => [name, m.value])),
  });
}
const count = (value: number | number[]) => ({ unit: 'Count', value });
const millis = (value: number | number[]) => ({ unit: 'Milliseconds', value });
const bytes = (value: number | number[]) => ({ unit: 'Bytes', value });

const run = [
  emf({ operation: 'getFile' }, { [METRIC.requests]: count([1, 1, 1, 1]), [METRIC.latency]: millis([10, 20, 30, 400]) }),
  emf({ operation: 'getFile' }, { [METRIC.requests]: count(1), [METRIC.latency]: millis(50), [METRIC.errors]: count(1), [METRIC.bytesRead]: bytes(1_000_000) }),
  // Bytes come under [service] and [service, operation]: counted once, and shown against their operation.
  emf({}, { [METRIC.bytesRead]: bytes(1_000_000) }),
  emf({ operation: 'getFile', errorType: 'FileNotFoundError' }, { [METRIC.errorsByType]: count(1) }),
  emf({ operation: 'createUpload' }, { [METRIC.requests]: count([1, 1]), [METRIC.latency]: millis([5, 7]) }),
  emf({ command: 'GetObject' }, { [METRIC.storageLatency]: millis([3, 4, 5, 90]) }),
  emf({ command: 'PutObject' }, { [METRIC.storageLatency]: millis(8), [METRIC.storageErrors]: count(1) }),
  emf({}, { [METRIC.fileSize]: bytes([5_000, 50_000, 500_000, 5_000_000, 50_000_000, 200_000_000]), [METRIC.bytesStored]: bytes(255_555_000), [METRIC.uploadsReady]: count([1, 1, 1, 1, 1, 1]) }),
  // Rejections under [service] and [service, reason] as separate lines: counted once.
  emf({}, { [METRIC.uploadsRejected]: count([1, 1]) }),
  emf({ reason: 'not audio' }, { [METRIC.uploadsRejected]: count(1) }),
  emf({ reason: 'size mismatch' }, { [METRIC.uploadsRejected]: count(1) }),
  emf({}, { [METRIC.uploadsFailed]: count(1), [METRIC.deadLetters]: count(1), [METRIC.sweptUploads]: count(3) }),
  emf({}, { [METRIC.storageUsed]: bytes(100), [METRIC.storedFiles]: count(1) }, 1_700_000_000_000),
  emf({}, { [METRIC.storageUsed]: bytes(2_500_000), [METRIC.storedFiles]: count(7) }, 1_700_000_060_000),
].join('\n');

describe('npm run stats', () => {
  it('reads every value of an EMF line, with its dimensions', () => {
    const [sample] = parseEmfLine(emf({ operation: 'getFile' }, { [METRIC.latency]: millis([1, 2, 3]) }));
    expect(sample).toMatchObject({ name: METRIC.latency, unit: 'Milliseconds', values: [1, 2, 3], operation: 'getFile', dimensions: { service: 'transcribo-storage', operation: 'getFile' } });
    expect(parseEmfLine('{"level":"INFO"}')).toEqual([]);
    expect(parseEmfLine('not json')).toEqual([]);
  });

  it('computes percentiles from individual values (nearest rank)', () => {
    expect(percentile([], 95)).toBe(0);
    expect(percentile([7], 50)).toBe(7);
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 95)).toBe(95);
  });

  it('summarises operations, errors, storage commands, sizes, outcomes and gauges', () => {
    const stats = summarize(parseEmf(`${run}\nsome stray line\n`));
    expect(stats.unreadable).toBe(1);
    expect(stats.bytes).toEqual({ stored: 255_555_000, read: 1_000_000 });
    expect(stats.operations).toEqual([
      { operation: 'getFile', count: 5, errors: 1, latencyMs: { p50: 30, p95: 400, n: 5 }, bytes: 1_000_000 },
      { operation: 'createUpload', count: 2, errors: 0, latencyMs: { p50: 5, p95: 7, n: 2 } },
    ]);
    expect(stats.errorsByType).toEqual([{ errorType: 'FileNotFoundError', operation: 'getFile', count: 1 }]);
    expect(stats.storage).toEqual([
      { command: 'GetObject', count: 4, errors: 0, p50: 4, p95: 90 },
      { command: 'PutObject', count: 1, errors: 1, p50: 8, p95: 8 },
    ]);
    expect(stats.fileSizes.values).toHaveLength(6);
    expect(stats.outcomes).toMatchObject({ ready: 6, rejected: 2, failed: 1, swept: 3, deadLetters: 1 });
    expect(stats.outcomes.rejectedByReason).toEqual([
      { reason: 'not audio', count: 1 },
      { reason: 'size mismatch', count: 1 },
    ]);
    expect(stats.gauges.map((g) => [g.name, g.value])).toEqual([
      [METRIC.storageUsed, 2_500_000],
      [METRIC.storedFiles, 7],
    ]);
  });

  it('draws the size distribution on a log scale', () => {
    const lines = histogram([5_000, 6_000, 50_000, 5_000_000, 200_000_000], 10);
    expect(lines).toEqual(['< 10 kB      2  ██████████', '10–100 kB    1  █████', '100 kB–1 MB  0', '1–10 MB      1  █████', '10–100 MB    0', '≥ 100 MB     1  █████']);
  });

  it('prints tables that name each operation with its numbers', () => {
    const text = formatStats(summarize(parseEmf(run)), 'metrics.jsonl');
    expect(text).toMatch(/^ {2}getFile +5 +1 +20\.0% +30 ms +400 ms +1\.00 MB$/m);
    expect(text).toMatch(/^ {2}createUpload +2 +0 +0\.0% +5\.0 ms +7\.0 ms$/m);
    expect(text).toMatch(/^ {2}FileNotFoundError +getFile +1$/m);
    expect(text).toMatch(/^ {2}GetObject +4 +0 +4\.0 ms +90 ms$/m);
    expect(text).toContain('ready 6, rejected 2, failed 1');
    expect(text).toContain('rejected: not audio ×1');
    expect(text).toContain(`${METRIC.storageUsed} 2.50 MB`);
    expect(text).toContain(`${METRIC.storedFiles} 7`);
  });

  it('reads a metrics file written before metric-names.ts (a metric per operation)', () => {
    const legacy = [
      JSON.stringify({ _aws: { Timestamp: 1, CloudWatchMetrics: [{ Namespace: 'N', Dimensions: [['service']], Metrics: [{ Name: 'GetFileInfoCount', Unit: 'Count' }, { Name: 'GetFileInfoLatency', Unit: 'Milliseconds' }, { Name: 'ProcessingLatency', Unit: 'Milliseconds' }] }] }, service: 's', GetFileInfoCount: [1, 1], GetFileInfoLatency: [3, 9], ProcessingLatency: 100 }),
    ].join('\n');
    const stats = summarize(parseEmf(legacy));
    expect(stats.operations).toEqual([{ operation: 'getFileInfo', count: 2, errors: 0, latencyMs: { p50: 3, p95: 9, n: 2 } }]);
  });
});
