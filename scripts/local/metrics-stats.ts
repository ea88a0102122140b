/**
 * `npm run stats`: what a local run's metrics say, in tables a person reads. The input is the
 * EMF lines `npm start` appends to .local/metrics.jsonl (local/metrics-sink.ts), one Powertools
 * flush a line; every statistic is computed from the individual values those lines carry
 * (Powertools writes a metric added several times in one flush as an array of values).
 * Metric names and dimensions are the contract's (lib/observability/metric-names.ts).
 */
import { METRIC } from '../../lib/observability/metric-names.ts';

export interface Sample {
  name: string;
  unit: string;
  values: number[];
  /** The values of every dimension the line names (all its dimension sets together). */
  dimensions: Record<string, string>;
  timestamp: number;
  /** The operation the line is about: its `operation` dimension, or else an `operation` property beside it. */
  operation?: string;
}

interface EmfLine {
  _aws?: { Timestamp?: number; CloudWatchMetrics?: Array<{ Dimensions?: string[][]; Metrics?: Array<{ Name?: string; Unit?: string }> }> };
  [key: string]: unknown;
}

const numbers = (value: unknown): number[] =>
  (Array.isArray(value) ? value : [value]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));

/** The samples of one EMF line; none for anything else. */
export function parseEmfLine(line: string): Sample[] {
  let parsed: EmfLine;
  try {
    parsed = JSON.parse(line) as EmfLine;
  } catch {
    return [];
  }
  const directives = parsed?._aws?.CloudWatchMetrics;
  if (!Array.isArray(directives)) return [];
  const timestamp = typeof parsed._aws!.Timestamp === 'number' ? parsed._aws!.Timestamp : 0;
  const samples: Sample[] = [];
  for (const directive of directives) {
    const dimensions: Record<string, string> = {};
    for (const set of directive.Dimensions ?? []) {
      for (const key of set) if (typeof parsed[key] === 'string') dimensions[key] = parsed[key] as string;
    }
    const operation = dimensions.operation ?? (typeof parsed.operation === 'string' ? parsed.operation : undefined);
    for (const metric of directive.Metrics ?? []) {
      if (typeof metric.Name !== 'string') continue;
      const values = numbers(parsed[metric.Name]);
      if (values.length > 0) samples.push({ name: metric.Name, unit: metric.Unit ?? 'None', values, dimensions, timestamp, ...(operation ? { operation } : {}) });
    }
  }
  return samples;
}

export function parseEmf(text: string): { samples: Sample[]; lines: number; unreadable: number } {
  const samples: Sample[] = [];
  let lines = 0;
  let unreadable = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    lines++;
    const parsed = parseEmfLine(line);
    if (parsed.length === 0) unreadable++;
    samples.push(...parsed);
  }
  return { samples, lines, unreadable };
}

/**
 * Metrics files written before metric-names.ts (its predecessor named a metric per operation:
 * `GetFileCount`, `GetFileLatency`, `GetFileErrors`) still read: a `<Op>Count` without an
 * `operation` dimension is operation `<op>`'s requests, and its `<Op>Latency` and `<Op>Errors`
 * go with it. Other names ending the same way (not preceded by a Count) are left alone.
 */
function withLegacyNames(samples: Sample[]): Sample[] {
  const known = new Set<string>(Object.values(METRIC));
  const legacy = (s: Sample, suffix: string) => !known.has(s.name) && s.operation === undefined && s.name.endsWith(suffix) && s.name.length > suffix.length;
  const operations = new Set(samples.filter((s) => legacy(s, 'Count')).map((s) => s.name.slice(0, -'Count'.length)));
  if (operations.size === 0) return samples;
  const renamed: Array<[string, string]> = [
    ['Count', METRIC.requests],
    ['Latency', METRIC.latency],
    ['Errors', METRIC.errors],
  ];
  return samples.map((s) => {
    for (const [suffix, name] of renamed) {
      const op = s.name.slice(0, -suffix.length);
      if (legacy(s, suffix) && operations.has(op)) return { ...s, name, operation: op[0]!.toLowerCase() + op.slice(1) };
    }
    return s;
  });
}

export interface OperationStats {
  operation: string;
  count: number;
  errors: number;
  latencyMs: { p50: number; p95: number; n: number };
  /** Bytes stored or read by it, when its lines say (undefined: it moves none that it reports). */
  bytes?: number;
}

export interface Stats {
  lines: number;
  unreadable: number;
  from?: number;
  to?: number;
  operations: OperationStats[];
  errorsByType: Array<{ errorType: string; operation: string; count: number }>;
  storage: Array<{ command: string; count: number; errors: number; p50: number; p95: number }>;
  bytes: { stored: number; read: number };
  fileSizes: { source: string; values: number[] };
  outcomes: { ready: number; rejected: number; rejectedByReason: Array<{ reason: string; count: number }>; failed: number; expired: number; swept: number; deadLetters: number; redriven: number; sweepErrors: number };
  gauges: Array<{ name: string; value: number; at: number }>;
}

/** Nearest-rank percentile of the values. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/**
 * A total emitted both with a finer dimension and without it (the contract has rejected uploads
 * under [service] and [service, reason]) is counted once: as separate lines the two sums agree,
 * and a line that carries both dimension sets is one value.
 */
function onceAcross(samples: Sample[], finer: string): number {
  const withIt = sum(samples.filter((s) => s.dimensions[finer] !== undefined).flatMap((s) => s.values));
  const without = sum(samples.filter((s) => s.dimensions[finer] === undefined).flatMap((s) => s.values));
  return Math.max(withIt, without);
}

export function summarize(parsed: { samples: Sample[]; lines: number; unreadable: number }): Stats {
  const samples = withLegacyNames(parsed.samples);
  const named = (name: string) => samples.filter((s) => s.name === name);
  const values = (list: Sample[]) => list.flatMap((s) => s.values);

  const operations = new Map<string, { count: number[]; errors: number[]; latency: number[]; bytes: number[] }>();
  const opOf = (op: string) => {
    let entry = operations.get(op);
    if (!entry) operations.set(op, (entry = { count: [], errors: [], latency: [], bytes: [] }));
    return entry;
  };
  for (const s of samples) {
    if (s.operation === undefined) continue;
    if (s.name === METRIC.requests) opOf(s.operation).count.push(...s.values);
    else if (s.name === METRIC.errors) opOf(s.operation).errors.push(...s.values);
    else if (s.name === METRIC.latency) opOf(s.operation).latency.push(...s.values);
    else if (s.name === METRIC.bytesRead || s.name === METRIC.bytesStored) opOf(s.operation).bytes.push(...s.values);
  }

  const errorsByType = new Map<string, number>();
  for (const s of named(METRIC.errorsByType)) {
    const key = JSON.stringify([s.dimensions.errorType ?? '(no type)', s.operation ?? '']);
    errorsByType.set(key, (errorsByType.get(key) ?? 0) + sum(s.values));
  }

  const storage = new Map<string, { latency: number[]; errors: number }>();
  const commandOf = (command: string) => {
    let entry = storage.get(command);
    if (!entry) storage.set(command, (entry = { latency: [], errors: 0 }));
    return entry;
  };
  for (const s of named(METRIC.storageLatency)) commandOf(s.dimensions.command ?? '(no command)').latency.push(...s.values);
  for (const s of named(METRIC.storageErrors)) commandOf(s.dimensions.command ?? '(no command)').errors += sum(s.values);

  const rejected = named(METRIC.uploadsRejected);
  const byReason = new Map<string, number>();
  for (const s of rejected) {
    if (s.dimensions.reason !== undefined) byReason.set(s.dimensions.reason, (byReason.get(s.dimensions.reason) ?? 0) + sum(s.values));
  }

  // Before the contract there was no FileSize; each stored file's BytesStored was its size.
  const fileSizeSamples = named(METRIC.fileSize);
  const fileSizes =
    fileSizeSamples.length > 0
      ? { source: METRIC.fileSize, values: values(fileSizeSamples) }
      : { source: METRIC.bytesStored, values: values(named(METRIC.bytesStored).filter((s) => s.operation === undefined)) };

  const gauges: Stats['gauges'] = [];
  for (const name of [METRIC.storageUsed, METRIC.storedFiles, METRIC.oldestWaitingUpload]) {
    const latest = named(name).reduce<Sample | undefined>((a, b) => (a === undefined || b.timestamp >= a.timestamp ? b : a), undefined);
    if (latest) gauges.push({ name, value: latest.values.at(-1)!, at: latest.timestamp });
  }

  const timestamps = samples.map((s) => s.timestamp).filter((t) => t > 0);
  return {
    lines: parsed.lines,
    unreadable: parsed.unreadable,
    from: timestamps.length ? Math.min(...timestamps) : undefined,
    to: timestamps.length ? Math.max(...timestamps) : undefined,
    operations: [...operations]
      .map(([operation, e]) => ({
        operation,
        // A line with latency but no count (a partial flush) still counts as calls.
        count: e.count.length > 0 ? sum(e.count) : e.latency.length,
        errors: sum(e.errors),
        latencyMs: { p50: percentile(e.latency, 50), p95: percentile(e.latency, 95), n: e.latency.length },
        ...(e.bytes.length > 0 ? { bytes: sum(e.bytes) } : {}),
      }))
      .filter((o) => o.count > 0 || o.errors > 0)
      .sort((a, b) => b.count - a.count || a.operation.localeCompare(b.operation)),
    errorsByType: [...errorsByType]
      .map(([key, count]) => {
        const [errorType, operation] = JSON.parse(key) as [string, string];
        return { errorType, operation, count };
      })
      .sort((a, b) => b.count - a.count),
    storage: [...storage]
      .map(([command, e]) => ({ command, count: e.latency.length, errors: e.errors, p50: percentile(e.latency, 50), p95: percentile(e.latency, 95) }))
      .sort((a, b) => b.count - a.count || a.command.localeCompare(b.command)),
    // Emitted under [service] and [service, operation]: counted once.
    bytes: { stored: onceAcross(named(METRIC.bytesStored), 'operation'), read: onceAcross(named(METRIC.bytesRead), 'operation') },
    fileSizes,
    outcomes: {
      ready: sum(values(named(METRIC.uploadsReady))),
      rejected: onceAcross(rejected, 'reason'),
      rejectedByReason: [...byReason].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count),
      failed: sum(values(named(METRIC.uploadsFailed))),
      expired: sum(values(named(METRIC.uploadsExpired))),
      swept: sum(values(named(METRIC.sweptUploads))),
      deadLetters: sum(values(named(METRIC.deadLetters))),
      redriven: sum(values(named(METRIC.deadLettersRedriven))),
      sweepErrors: sum(values(named(METRIC.sweepErrors))),
    },
    gauges,
  };
}

/** Decimal units, as file sizes are usually quoted. */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value.toFixed(0) : value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

const ms = (n: number) => `${n < 10 ? n.toFixed(1) : n.toFixed(0)} ms`;

function table(header: string[], rows: string[][], rightAligned: boolean[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (rightAligned[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** Decades from 10 kB to 100 MB: recordings run from a few seconds to hours, evenly on a log scale. */
export const SIZE_BUCKETS: Array<{ label: string; below: number }> = [
  { label: '< 10 kB', below: 10e3 },
  { label: '10–100 kB', below: 100e3 },
  { label: '100 kB–1 MB', below: 1e6 },
  { label: '1–10 MB', below: 10e6 },
  { label: '10–100 MB', below: 100e6 },
  { label: '≥ 100 MB', below: Infinity },
];

export function histogram(values: number[], width = 40): string[] {
  const counts = SIZE_BUCKETS.map(() => 0);
  for (const v of values) counts[SIZE_BUCKETS.findIndex((b) => v < b.below)]!++;
  const most = Math.max(1, ...counts);
  const labelWidth = Math.max(...SIZE_BUCKETS.map((b) => b.label.length));
  const countWidth = String(most).length;
  return SIZE_BUCKETS.map((b, i) => {
    const n = counts[i]!;
    // A bucket with any file shows at least a sliver.
    const bar = '█'.repeat(n === 0 ? 0 : Math.max(1, Math.round((n / most) * width)));
    return `${b.label.padEnd(labelWidth)}  ${String(n).padStart(countWidth)}  ${bar}`.trimEnd();
  });
}

export function formatStats(stats: Stats, source: string): string {
  const out: string[] = [];
  const span = stats.from !== undefined ? `, ${new Date(stats.from).toISOString()} – ${new Date(stats.to!).toISOString()}` : '';
  out.push(`${source}: ${stats.lines} metric lines${span}${stats.unreadable ? ` (${stats.unreadable} unreadable, skipped)` : ''}`);

  out.push('', 'Operations');
  if (stats.operations.length === 0) out.push('  (none recorded)');
  else {
    out.push(
      ...table(
        ['operation', 'count', 'errors', 'error rate', 'p50', 'p95', 'bytes'],
        stats.operations.map((o) => [
          o.operation,
          String(o.count),
          String(o.errors),
          `${o.count ? ((100 * o.errors) / o.count).toFixed(1) : '0.0'}%`,
          o.latencyMs.n ? ms(o.latencyMs.p50) : '–',
          o.latencyMs.n ? ms(o.latencyMs.p95) : '–',
          o.bytes !== undefined ? formatBytes(o.bytes) : '',
        ]),
        [false, true, true, true, true, true, true],
      ).map((l) => `  ${l}`),
    );
  }
  out.push(`  bytes stored ${formatBytes(stats.bytes.stored)}, bytes read ${formatBytes(stats.bytes.read)}`);

  out.push('', 'Errors by type');
  if (stats.errorsByType.length === 0) out.push('  (none)');
  else out.push(...table(['type', 'operation', 'count'], stats.errorsByType.map((e) => [e.errorType, e.operation, String(e.count)]), [false, false, true]).map((l) => `  ${l}`));

  out.push('', 'Storage server latency by command');
  if (stats.storage.length === 0) out.push('  (none recorded)');
  else {
    out.push(
      ...table(
        ['command', 'count', 'errors', 'p50', 'p95'],
        stats.storage.map((s) => [s.command, String(s.count), String(s.errors), s.count ? ms(s.p50) : '–', s.count ? ms(s.p95) : '–']),
        [false, true, true, true, true],
      ).map((l) => `  ${l}`),
    );
  }

  const sizes = stats.fileSizes.values;
  out.push('', `File sizes (${sizes.length} files${stats.fileSizes.source === METRIC.fileSize ? '' : `, from ${stats.fileSizes.source}`})`);
  if (sizes.length === 0) out.push('  (none stored)');
  else {
    out.push(...histogram(sizes).map((l) => `  ${l}`));
    out.push(`  p50 ${formatBytes(percentile(sizes, 50))}, p95 ${formatBytes(percentile(sizes, 95))}, largest ${formatBytes(Math.max(...sizes))}`);
  }

  const o = stats.outcomes;
  out.push('', 'Processing outcomes');
  out.push(`  ready ${o.ready}, rejected ${o.rejected}, failed ${o.failed}, expired ${o.expired}, swept ${o.swept}, dead letters ${o.deadLetters} (redriven ${o.redriven}), sweep errors ${o.sweepErrors}`);
  for (const r of o.rejectedByReason) out.push(`  rejected: ${r.reason} ×${r.count}`);

  out.push('', 'Latest gauges');
  if (stats.gauges.length === 0) out.push('  (no sweep has reported them yet)');
  for (const g of stats.gauges) {
    const value = g.name === METRIC.storageUsed ? formatBytes(g.value) : g.name === METRIC.oldestWaitingUpload ? `${g.value.toFixed(0)} s` : String(g.value);
    out.push(`  ${g.name} ${value}  (at ${new Date(g.at).toISOString()})`);
  }
  return out.join('\n');
}
