import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { wav } from '../support/audio-fixtures.ts';
import { Client, sha256 } from '../support/client-journey.ts';
import { startIsolatedStack, type IsolatedStack } from '../support/isolated-stack.ts';
import { processTreeRssMb } from '../support/running-product.ts';

/**
 * The soak: many recordings of mixed sizes from concurrent clients through `npm start` on a real
 * MinIO of its own (the README's MinIO path: webhook events, relay, queue, sweep), each uploaded
 * with its presigned form, waited for, read back by ranges and compared. `npm run soak` runs it
 * at full size; `npm test` runs a short one (test/e2e/soak.test.ts).
 */

export interface SoakOptions {
  uploads: number;
  clients: number;
  minBytes: number;
  maxBytes: number;
  /** How long one file may take from its upload to `ready`. */
  settleTimeoutMs: number;
  progress?: (line: string) => void;
}

export interface SoakReport {
  /** The EMF lines npm start kept during the run, for `npm run stats -- <file>`. */
  metricsFile: string;
  uploads: number;
  ready: number;
  /** Never settled, or gone. */
  lost: number;
  /** Ready, but read back different (or reported with another SHA-256). */
  corrupted: number;
  rejected: number;
  failed: number;
  /** Answers that were a timeout (504) or no answer at all. */
  timeouts: number;
  /** API answers by status (and error type). */
  answers: Record<string, number>;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  bytes: number;
  durationMs: number;
  throughputMBps: number;
  filesPerSecond: number;
  peakRssMb: number;
  idleRssMb: number;
}

/** Sizes spread evenly on a log scale, as recordings are: many short notes, some long calls. */
function mixedSize(min: number, max: number): number {
  return Math.round(Math.exp(Math.log(min) + (randomInt(1_000_000) / 1_000_000) * (Math.log(max) - Math.log(min))));
}

const percentile = (sorted: number[], p: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);

export async function runSoak(options: SoakOptions, stack?: IsolatedStack): Promise<SoakReport> {
  const own = stack === undefined;
  stack ??= await startIsolatedStack({ STORAGE_MAX_FILE_SIZE: String(Math.max(options.maxBytes, 1024 * 1024)), POWERTOOLS_LOG_LEVEL: 'ERROR' });
  try {
    const client = new Client(() => stack.product.api, await stack.token('soak'));
    const idleRssMb = processTreeRssMb(stack.product.pid);
    let peakRssMb = idleRssMb;
    const sampler = setInterval(() => (peakRssMb = Math.max(peakRssMb, processTreeRssMb(stack.product.pid))), 250);
    const counts = { ready: 0, lost: 0, corrupted: 0, rejected: 0, failed: 0 };
    const latencies: number[] = [];
    let bytes = 0;
    let next = 0;
    let done = 0;
    const started = Date.now();

    const one = async () => {
      const recording = wav(mixedSize(options.minBytes, options.maxBytes));
      bytes += recording.length;
      let fileId: string | undefined;
      try {
        const uploaded = await client.upload(recording);
        fileId = uploaded.fileId;
        const info = await client.settled(fileId, { timeoutMs: options.settleTimeoutMs, pollMs: 100 });
        if (info.status !== 'ready') {
          counts[info.status === 'rejected' ? 'rejected' : info.status === 'failed' ? 'failed' : 'lost']++;
          return;
        }
        latencies.push(Date.now() - uploaded.uploadedAt);
        const same = info.sha256 === sha256(recording) && (await client.readBack(fileId, recording.length)) === sha256(recording);
        counts[same ? 'ready' : 'corrupted']++;
      } catch (error) {
        counts.lost++;
        options.progress?.(`file ${fileId ?? '(not created)'} lost: ${(error as Error).message.slice(0, 200)}`);
      } finally {
        if (++done % Math.max(1, Math.floor(options.uploads / 10)) === 0) {
          options.progress?.(`${done}/${options.uploads} done, ${counts.ready} ready, peak RSS ${peakRssMb.toFixed(0)} MB`);
        }
      }
    };
    await Promise.all(
      Array.from({ length: options.clients }, async () => {
        while (next < options.uploads) {
          next++;
          await one();
        }
      }),
    );
    const durationMs = Date.now() - started;
    clearInterval(sampler);
    const sorted = [...latencies].sort((a, b) => a - b);
    const answers = Object.fromEntries(client.answers);
    return {
      metricsFile: join(stack.env.TRANSCRIBO_LOCAL_DIR!, 'metrics.jsonl'),
      uploads: options.uploads,
      ...counts,
      timeouts: Object.entries(answers)
        .filter(([kind]) => kind.startsWith('504') || kind === 'unreachable')
        .reduce((n, [, count]) => n + count, 0),
      answers,
      latencyMs: { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0 },
      bytes,
      durationMs,
      throughputMBps: bytes / 1e6 / (durationMs / 1000),
      filesPerSecond: options.uploads / (durationMs / 1000),
      peakRssMb,
      idleRssMb,
    };
  } finally {
    if (own) await stack.close();
  }
}

export function formatSoak(report: SoakReport): string {
  const l = report.latencyMs;
  return [
    `uploads ${report.uploads}: ready ${report.ready}, lost ${report.lost}, corrupted ${report.corrupted}, rejected ${report.rejected}, failed ${report.failed}, timeouts ${report.timeouts}`,
    `upload-to-ready latency: p50 ${l.p50} ms, p95 ${l.p95} ms, p99 ${l.p99} ms, max ${l.max} ms`,
    `throughput: ${(report.bytes / 1e6).toFixed(0)} MB in ${(report.durationMs / 1000).toFixed(1)} s = ${report.throughputMBps.toFixed(1)} MB/s, ${report.filesPerSecond.toFixed(2)} files/s`,
    `npm start's process tree: RSS ${report.idleRssMb.toFixed(0)} MB idle, peak ${report.peakRssMb.toFixed(0)} MB`,
    `API answers: ${Object.entries(report.answers).map(([k, v]) => `${k} ×${v}`).join(', ')}`,
  ].join('\n');
}
