/**
 * One measured job in a process of its own, so its peak RSS is its own:
 *   node bench/bench-job.ts seal <fileId>      process-upload on an upload already in the incoming bucket
 *   node bench/bench-job.ts copy <from> <to>   the baseline: the same bytes streamed GET → multipart upload, no crypto
 *   node bench/bench-job.ts idle               nothing: what the loaded bundle alone costs (the floor under both)
 * Prints one JSON line: { ms, cpuMs, maxRssMb }. CPU time is steadier than wall time on a
 * shared machine, so the bench reports both.
 *
 * The peak RSS is the kernel's high-water mark of this process's own memory (VmHWM). Not
 * getrusage's maxRSS: Linux carries a parent's RSS at fork into its child's maxRSS across exec,
 * so every job of a bench process grown to 200 MB reported at least 200 MB, idle ones too.
 */
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { processFile } from '../lib/processing/process-upload.ts';
import { sharedStorageContext } from '../lib/storage/storage-context.ts';

/**
 * The plain copy's own settings (lib-storage's Upload with 5 MiB parts, 4 in flight), fixed here
 * so that the baseline stays the same whatever the write path under test does with its parts.
 */
const COPY_PART_SIZE = 5 * 1024 * 1024;
const COPY_QUEUE_SIZE = 4;

const [kind, a, b] = process.argv.slice(2);
const ctx = sharedStorageContext();
const s3 = ctx.s3.internal;
const started = performance.now();
const cpuBefore = process.cpuUsage();

if (kind === 'seal') {
  const outcome = await processFile(ctx, a!, 'event');
  if (outcome.outcome !== 'ready') throw new Error(`processing ended ${outcome.outcome}: ${JSON.stringify(outcome)}`);
} else if (kind === 'copy') {
  const source = await s3.send(new GetObjectCommand({ Bucket: ctx.config.bucket, Key: a! }));
  await new Upload({
    client: s3,
    params: { Bucket: ctx.config.bucket, Key: b!, Body: source.Body as Readable },
    partSize: COPY_PART_SIZE,
    queueSize: COPY_QUEUE_SIZE,
  }).done();
} else if (kind !== 'idle') {
  throw new Error(`unknown job ${kind}`);
}

const ms = performance.now() - started;
const cpu = process.cpuUsage(cpuBefore);
/** Peak resident memory of this process, MB: VmHWM where Linux gives it, else getrusage's (see above). */
function peakRssMb(): number {
  try {
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kb !== undefined) return Number(kb) / 1024;
  } catch {
    // Not Linux: no /proc.
  }
  return process.resourceUsage().maxRSS / 1024;
}

console.log(JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000, maxRssMb: peakRssMb() }));
