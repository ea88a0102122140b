/**
 * `npm run bench`: the processing pipeline against a plain streamed copy of the same bytes,
 * on a real MinIO, measured side by side in one run (these machines are shared and noisy:
 * only ratios from the same run mean anything).
 *
 * For each size (100 MB, then 1 GB unless BENCH_SIZES_MB says otherwise), rounds alternate
 * copy and seal, each in a fresh process; the medians give the ratio, the throughput and the
 * peak RSS. Then 1 MiB range reads: decrypting only the touched frames against a plain
 * range GET of an unencrypted object.
 * Targets (issue 2): ratio ≤ 1.25; peak RSS ≤ 200 MB and flat from 100 MB to 1 GB.
 * Every seal runs under a 3 s lease while another claimant tries the file each second (issue 6):
 * a 1 GB run spans several leases and must keep its file.
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CopyObjectCommand, CreateBucketCommand, DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { parse } from 'yaml';
import { parseConfig } from '../lib/config.ts';
import { processFile } from '../lib/processing/process-upload.ts';
import { incomingKey } from '../lib/storage/object-layout.ts';
import { createStorageContext } from '../lib/storage/storage-context.ts';
import { StorageService } from '../lib/storage/storage-service.ts';
import { bundle } from '../scripts/bundle.ts';

const run = promisify(execFile);
const MB = 1_000_000;
const sizesMb = (process.env.BENCH_SIZES_MB ?? '100,1000').split(',').map(Number);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const tag = randomBytes(3).toString('hex');

const env: NodeJS.ProcessEnv = {
  ...process.env,
  STORAGE_BUCKET: `bench-${tag}-files`,
  STORAGE_INCOMING_BUCKET: `bench-${tag}-incoming`,
  STORAGE_ENCRYPTION_KEYS: `bench:${randomBytes(32).toString('base64')}`,
  STORAGE_AUTH_JWT_SECRET: randomBytes(32).toString('hex'),
  STORAGE_MAX_FILE_SIZE: String(2 ** 40),
  // The shortest lease: every run spans several, so the bench also proves a long run keeps its file.
  STORAGE_PROCESSING_LEASE_SECONDS: '3',
  POWERTOOLS_LOG_LEVEL: 'ERROR',
  POWERTOOLS_METRICS_DISABLED: 'true',
};
if (!env.STORAGE_ENDPOINT) throw new Error('run through `npm run bench`, which starts MinIO');
const config = parseConfig(env);
const ctx = createStorageContext(config);
const service = new StorageService(ctx);
const s3 = ctx.s3.internal;
for (const Bucket of [config.bucket, config.incomingBucket]) await s3.send(new CreateBucketCommand({ Bucket }));

/** A WAV-like body: a real header, then a random 1 MiB block repeated (MinIO does not compress). */
function wavStream(size: number): Readable {
  const block = randomBytes(1024 * 1024);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(Math.min(size - 8, 0xffffffff), 4);
  header.write('WAVEfmt ', 8, 'ascii');
  header.write('data', 36, 'ascii');
  return Readable.from(
    (function* () {
      yield header;
      let left = size - header.length;
      while (left > 0) {
        const chunk = block.subarray(0, Math.min(block.length, left));
        left -= chunk.length;
        yield chunk;
      }
    })(),
  );
}

// Jobs run as process-upload runs in Lambda: from a bundle (stripping TypeScript at load costs
// ~30 MB of RSS) and with the Node options serverless.yml gives that function.
const jobDir = await mkdtemp(join(tmpdir(), 'transcribo-bench-'));
await bundle({ 'bench-job': 'bench/bench-job.ts' }, jobDir);
const deployed = parse(await readFile('serverless.yml', 'utf8'));
const nodeOptions: string[] = String(deployed.functions.processUpload.environment.NODE_OPTIONS).split(/\s+/).filter(Boolean);

async function job(...args: string[]): Promise<{ ms: number; cpuMs: number; maxRssMb: number }> {
  const { stdout } = await run(process.execPath, [...nodeOptions, join(jobDir, 'bench-job.mjs'), ...args], { env, maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

/**
 * While a seal runs, another claimant (what the sweep or a redelivered event would be) tries the
 * same file every second, from this process. Every try must defer to the run's renewed lease: a
 * takeover would mean a long run loses its file. Counts what it saw for the summary.
 */
const leaseWatch = { tries: 0, leasesSeen: new Set<string>(), takeovers: 0 };
async function contested<T>(fileId: string, running: Promise<T>): Promise<T> {
  let done = false;
  const watching = (async () => {
    while (!done) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (done) break;
      const held = (await ctx.manifests.read(fileId))?.manifest;
      if (held?.status !== 'processing') continue;
      leaseWatch.leasesSeen.add(held.leaseUntil ?? '');
      leaseWatch.tries++;
      const outcome = await processFile(ctx, fileId, 'sweep');
      if (outcome.outcome !== 'deferred') leaseWatch.takeovers++;
    }
  })();
  try {
    return await running;
  } finally {
    done = true;
    await watching;
  }
}

const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
const fmt = (n: number, digits = 1) => n.toFixed(digits);
const rows: string[] = [];
const summary: Record<string, number> = {};

for (const sizeMb of sizesMb) {
  const size = sizeMb * MB;
  const sourceKey = `bench/source-${sizeMb}`;
  await new Upload({ client: s3, params: { Bucket: config.bucket, Key: sourceKey, Body: wavStream(size) }, partSize: 16 * 1024 * 1024 }).done();
  const copies: number[] = [];
  const seals: number[] = [];
  const copyRss: number[] = [];
  const sealRss: number[] = [];
  const copyCpu: number[] = [];
  const sealCpu: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const copy = await job('copy', sourceKey, `bench/copy-${sizeMb}`);
    copies.push(copy.ms);
    copyRss.push(copy.maxRssMb);
    copyCpu.push(copy.cpuMs);

    const created = await service.createUpload('bench', { filename: 'bench.wav', contentType: 'audio/wav', size });
    await s3.send(
      new CopyObjectCommand({ Bucket: config.incomingBucket, Key: incomingKey(created.fileId), CopySource: `${config.bucket}/${sourceKey}` }),
    );
    const seal = await contested(created.fileId, job('seal', created.fileId));
    seals.push(seal.ms);
    sealRss.push(seal.maxRssMb);
    sealCpu.push(seal.cpuMs);
    await service.deleteFile('bench', created.fileId);
  }
  const ratio = median(seals) / median(copies);
  summary[`ratio_${sizeMb}MB`] = ratio;
  summary[`peakRss_${sizeMb}MB`] = Math.max(...sealRss);
  rows.push(
    `${String(sizeMb).padStart(5)} MB | copy ${fmt(median(copies), 0).padStart(6)} ms ${fmt(size / MB / (median(copies) / 1000)).padStart(6)} MB/s | ` +
      `process ${fmt(median(seals), 0).padStart(6)} ms ${fmt(size / MB / (median(seals) / 1000)).padStart(6)} MB/s | ` +
      `ratio ${fmt(ratio, 2)} | CPU copy ${fmt(median(copyCpu) / sizeMb, 1)} ms/MB, process ${fmt(median(sealCpu) / sizeMb, 1)} ms/MB | ` +
      `peak RSS copy ${fmt(Math.max(...copyRss), 0)} MB, process ${fmt(Math.max(...sealRss), 0)} MB`,
  );
  await s3.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: sourceKey }));
  await s3.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: `bench/copy-${sizeMb}` }));
}

// 1 MiB range reads on a 100 MB file: decrypt only the frames touched vs a plain range GET.
const rangeSize = 100 * MB;
const encrypted = await service.storeFile('bench', wavStream(rangeSize), { filename: 'r.wav', contentType: 'audio/wav', size: rangeSize });
await new Upload({ client: s3, params: { Bucket: config.bucket, Key: 'bench/plain', Body: wavStream(rangeSize) } }).done();
const MiB = 1024 * 1024;
const reads = 30;
const offsets = Array.from({ length: reads }, () => Math.floor(Math.random() * (rangeSize - MiB)));
const plainMs: number[] = [];
const decryptMs: number[] = [];
for (const start of offsets) {
  let t = performance.now();
  const plain = await s3.send(new GetObjectCommand({ Bucket: config.bucket, Key: 'bench/plain', Range: `bytes=${start}-${start + MiB - 1}` }));
  await plain.Body!.transformToByteArray();
  plainMs.push(performance.now() - t);
  t = performance.now();
  const content = await service.getFile('bench', encrypted.fileId, { range: { start, end: start + MiB - 1 } });
  const bytes = await buffer(content.stream);
  decryptMs.push(performance.now() - t);
  if (bytes.length !== MiB) throw new Error('range read returned the wrong length');
}
await service.deleteFile('bench', encrypted.fileId);
await s3.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: 'bench/plain' }));
summary.rangeRatio = median(decryptMs) / median(plainMs);
await rm(jobDir, { recursive: true, force: true });

console.log(`\nTranscribo storage bench — Node ${process.version}, jobs run with ${nodeOptions.join(' ')}, ${rounds} rounds, medians\n`);
console.log('processing (inspect + SHA-256 + AES-256-GCM frames + multipart) vs plain streamed copy:');
for (const row of rows) console.log(`  ${row}`);
console.log(
  `\n1 MiB range read (${reads} random offsets in 100 MB): plain GET ${fmt(median(plainMs), 2)} ms, ` +
    `decrypted ${fmt(median(decryptMs), 2)} ms, ratio ${fmt(summary.rangeRatio, 2)}`,
);
console.log(
  `\nlease (${env.STORAGE_PROCESSING_LEASE_SECONDS} s, renewed every third): ${leaseWatch.tries} competing claims during the seals, ` +
    `${leaseWatch.takeovers} took a file over; ${leaseWatch.leasesSeen.size} distinct lease deadlines seen`,
);
if (leaseWatch.takeovers > 0) throw new Error('a running seal lost its file to a competing claim: its lease was not kept');
const rss = sizesMb.map((s) => summary[`peakRss_${s}MB`]!);
console.log(`\ntargets: ratio ≤ 1.25 → ${sizesMb.map((s) => fmt(summary[`ratio_${s}MB`]!, 2)).join(', ')}; ` +
  `peak RSS ≤ 200 MB and flat → ${rss.map((r) => fmt(r, 0)).join(' MB, ')} MB`);
