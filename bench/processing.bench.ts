/**
 * `npm run bench`: every target of issue 13, measured side by side in one run on a real MinIO
 * (these machines are shared and noisy: only ratios from the same run mean anything), each
 * printed with "met" or "NOT met":
 *
 * - processing ≤ 1.10 × a plain streamed copy of the same bytes, at 100 MB and at 1 GB (ratio
 *   of the median wall times; rounds alternate copy and seal, each in a fresh process, run from
 *   a bundle with the Node options serverless.yml gives process-upload);
 * - extra CPU ≤ 1.5 ms/MB (process CPU ms/MB minus copy CPU ms/MB, medians);
 * - peak RSS of the processing job ≤ 160 MB, and flat from 100 MB to 1 GB: the largest size's
 *   peak at most FLAT_RSS_MB above the smallest's. Printed beside it: the loaded bundle alone
 *   (a job that imports everything and does nothing);
 * - a 1 MiB range through the function's code path (StorageService.getFile as get-file calls it:
 *   authorisation, manifest, ciphertext GET, decryption; the path issue 13's 1.40–1.72 was
 *   measured on) ≤ 1.3 × an SDK range GET of the same plaintext stored unencrypted, and ≤ 1.3 ×
 *   the same from a MinIO that encrypts at rest (SSE-S3), which the bench starts itself. The
 *   whole handler (a playback link's token, then the body base64-encoded into the Lambda proxy
 *   response, which no GET pays) is printed beside it;
 * - upload-to-`ready` of a 100 MB file: from the end of the client's presigned PUT until
 *   GET /files/{id} says ready, process-upload invoked with the object-created event as Lambda
 *   would (no target: printed), and the same for a 10 kB file (the fixed cost per file).
 *
 * Also printed: what clients do (bench/client-paths.ts): a resumable upload of the largest size
 * through the product, 4 parts at a time, against one presigned PutObject; the first audio byte
 * and 1 MiB ranges through a playback link against presigned GETs of the ciphertext. Every seal
 * runs under a 3 s lease while another claimant tries the file each second (issue 6): a 1 GB run
 * spans several leases and must keep its file.
 *
 * BENCH_SIZES_MB (default 100,1000), BENCH_ROUNDS (3), BENCH_READS (60 range reads per reader).
 */
import { env } from './bench-env.ts';
import { buffer } from 'node:stream/consumers';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CopyObjectCommand, CreateBucketCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { execa } from 'execa';
import { parse } from 'yaml';
import { parseConfig } from '../lib/config.ts';
import { processFile } from '../lib/processing/process-upload.ts';
import { incomingKey } from '../lib/storage/object-layout.ts';
import { createStorageContext } from '../lib/storage/storage-context.ts';
import { StorageService } from '../lib/service/storage-service.ts';
import { bundle } from '../scripts/bundle.ts';
import { signBearerToken } from '../scripts/local/dev-token.ts';
import {
  firstByteTimes,
  linkRangeReader,
  median,
  percentile,
  playbackLinkPath,
  presignedCiphertextUrl,
  presignedRangeReader,
  processUploaded,
  putWhole,
  sameAs,
  sdkRangeReader,
  startSseS3Store,
  timeRangeReads,
  uploadMultipart,
  uploadToReady,
  type Caller,
  type MultipartRun,
} from './client-paths.ts';
import { SyntheticRecording } from './synthetic-recording.ts';

const MB = 1_000_000;
const sizesMb = (process.env.BENCH_SIZES_MB ?? '100,1000').split(',').map(Number);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const reads = Number(process.env.BENCH_READS ?? 60);

// Issue 13's targets.
const MAX_RATIO = 1.1;
const MAX_EXTRA_CPU_MS_PER_MB = 1.5;
const MAX_PEAK_RSS_MB = 160;
/** "Flat": the largest size's peak RSS at most this much above the smallest size's. */
const FLAT_RSS_MB = 10;
const MAX_RANGE_RATIO = 1.3;

const config = parseConfig(env);
const ctx = createStorageContext(config);
const service = new StorageService(ctx);
const s3 = ctx.s3.internal;
for (const Bucket of [config.bucket, config.incomingBucket]) await s3.send(new CreateBucketCommand({ Bucket }));

/** A WAV-like body: a real header, then a random 1 MiB block repeated (MinIO does not compress). */
const wavStream = (size: number) => new SyntheticRecording(size).stream();

// Jobs run as process-upload runs in Lambda: from a bundle (stripping TypeScript at load costs
// ~30 MB of RSS) and with the Node options serverless.yml gives that function.
const jobDir = await mkdtemp(join(tmpdir(), 'transcribo-bench-'));
await bundle({ 'bench-job': 'bench/bench-job.ts' }, jobDir);
const deployed = parse(await readFile('serverless.yml', 'utf8'));
const nodeOptions: string[] = String(deployed.functions.processUpload.environment.NODE_OPTIONS).split(/\s+/).filter(Boolean);

async function job(...args: string[]): Promise<{ ms: number; cpuMs: number; maxRssMb: number }> {
  const { stdout } = await execa(process.execPath, [...nodeOptions, join(jobDir, 'bench-job.mjs'), ...args], { env, maxBuffer: 1 << 20 });
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

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const rows: string[] = [];
const summary: Record<string, number> = {};

// What clients do (bench/client-paths.ts): the functions run in this process, as tests call them.
const caller: Caller = { ctx, owner: 'bench', token: await signBearerToken(config.jwtSecret!, 'bench') };
const spread = (xs: number[]) => `median ${fmt(median(xs), 2).padStart(7)} ms, p95 ${fmt(percentile(xs, 95), 2).padStart(7)} ms`;

// Resumable upload of the largest size, before anything else runs in this process, so that its
// peak RSS is the uploads' own. Bodies are streamed; the multipart upload is then processed to
// ready (untimed) and its SHA-256 checked.
const uploadMb = Math.max(...sizesMb);
const uploadRecording = new SyntheticRecording(uploadMb * MB);
const rssBeforeUploads = process.memoryUsage().rss / 2 ** 20;
const putMs: number[] = [];
const multipartMs: number[] = [];
// The same upload with parts of 64 MiB (a client may ask for larger parts): what the part size costs.
const LARGE_PARTS = 64 * 2 ** 20;
const largePartsMs: number[] = [];
let lastMultipart: MultipartRun | undefined;
let lastLargeParts: MultipartRun | undefined;
const putKey = `bench/put-${uploadMb}`;
const putOnce = async () => {
  putMs.push(await putWhole(caller, uploadRecording, putKey));
  await s3.send(new DeleteObjectCommand({ Bucket: config.incomingBucket, Key: putKey }));
};
const multipartOnce = async () => {
  if (lastMultipart) await service.deleteFile('bench', lastMultipart.fileId);
  lastMultipart = await uploadMultipart(caller, uploadRecording, { parallel: 4 });
  multipartMs.push(lastMultipart.ms);
};
const largePartsOnce = async () => {
  lastLargeParts = await uploadMultipart(caller, uploadRecording, { parallel: 4, partSize: LARGE_PARTS });
  largePartsMs.push(lastLargeParts.ms);
  await service.deleteFile('bench', lastLargeParts.fileId);
};
// Rounds rotate which goes first.
for (let round = 0; round < rounds; round++) {
  const order = [putOnce, multipartOnce, largePartsOnce];
  for (let k = 0; k < order.length; k++) await order[(round + k) % order.length]!();
}
const uploadPeakRss = process.resourceUsage().maxRSS / 1024;
const uploaded = await processUploaded(caller, lastMultipart!.fileId);
const uploadedOk = uploaded.status === 'ready' && uploaded.size === uploadRecording.size && uploaded.sha256 === uploadRecording.sha256();
if (!uploadedOk) throw new Error(`the multipart upload did not process to a ready, identical file: ${JSON.stringify(uploaded)}`);
await service.deleteFile('bench', lastMultipart!.fileId);

// The floor under every job's RSS: the bundle loaded with the function's Node options, doing nothing.
const loadedRss: number[] = [];
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
    loadedRss.push((await job('idle')).maxRssMb);
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
  summary[`extraCpu_${sizeMb}MB`] = (median(sealCpu) - median(copyCpu)) / sizeMb;
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

// Upload to ready, 100 MB and 10 kB files alternating: from the end of the client's PUT until
// GET /files/{id} says ready, process-upload running in this process on the object-created event.
const readySize = 100 * MB;
const readyRecording = new SyntheticRecording(readySize);
const tinyRecording = new SyntheticRecording(10_000);
const TINY_PER_ROUND = 3;
const readyMs: number[] = [];
const tinyReadyMs: number[] = [];
for (let round = 0; round < rounds; round++) {
  const large = await uploadToReady(caller, readyRecording);
  readyMs.push(large.readyMs);
  await service.deleteFile('bench', large.fileId);
  for (let k = 0; k < TINY_PER_ROUND; k++) {
    const tiny = await uploadToReady(caller, tinyRecording);
    tinyReadyMs.push(tiny.readyMs);
    await service.deleteFile('bench', tiny.fileId);
  }
}

// Reads of a 100 MB file. The first audio byte: a media player's `bytes=0-` through a playback
// link vs a presigned GET of the ciphertext. Then 1 MiB ranges at random offsets, every reader at
// each offset, taking turns: the function (get-file through a playback link) and the library
// (decrypting only the frames touched) vs SDK range GETs of the same plaintext stored unencrypted
// here and on a MinIO with SSE-S3; and the link vs a presigned range GET of the ciphertext.
// Plaintext reads are checked byte for byte against the recording.
const rangeSize = 100 * MB;
const rangeRecording = new SyntheticRecording(rangeSize);
const encrypted = await service.storeFile('bench', rangeRecording.stream(), { filename: 'r.wav', contentType: 'audio/wav', size: rangeSize });
await new Upload({ client: s3, params: { Bucket: config.bucket, Key: 'bench/plain', Body: rangeRecording.stream() } }).done();
const sseS3 = await startSseS3Store(rangeRecording);
const firstByte = await firstByteTimes(caller, encrypted.fileId, reads, rangeRecording);
summary.firstByteRatio = median(firstByte.linkMs) / median(firstByte.plainMs);

const MiB = 1024 * 1024;
const offsets = Array.from({ length: reads }, () => Math.floor(Math.random() * (rangeSize - MiB)));
const linkPath = await playbackLinkPath(caller, encrypted.fileId);
const ciphertextUrl = await presignedCiphertextUrl(caller, encrypted.fileId);
const rangeMs = await timeRangeReads(
  {
    plain: sdkRangeReader(s3, config.bucket, 'bench/plain'),
    sseS3: sseS3.reader,
    decrypted: async (start, end) => buffer((await service.getFile('bench', encrypted.fileId, { range: { start, end } })).stream),
    link: linkRangeReader(linkPath, encrypted.fileId),
    ciphertext: presignedRangeReader(ciphertextUrl),
  },
  offsets,
  MiB,
  {
    plain: sameAs(rangeRecording, 'plain GET'),
    sseS3: sameAs(rangeRecording, 'SSE-S3 GET'),
    decrypted: sameAs(rangeRecording, 'library'),
    link: sameAs(rangeRecording, 'link'),
  },
);
await sseS3.stop();
await service.deleteFile('bench', encrypted.fileId);
await s3.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: 'bench/plain' }));
summary.rangeRatio = median(rangeMs.decrypted) / median(rangeMs.plain);
summary.sseS3RangeRatio = median(rangeMs.decrypted) / median(rangeMs.sseS3);
summary.handlerRangeRatio = median(rangeMs.link) / median(rangeMs.plain);
summary.linkRangeRatio = median(rangeMs.link) / median(rangeMs.ciphertext);
await rm(jobDir, { recursive: true, force: true });

const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
console.log(`\nTranscribo storage bench — Node ${process.version}, jobs run with ${nodeOptions.join(' ')}, ${rounds} rounds, medians\n`);
console.log('processing (inspect + SHA-256 + AES-256-GCM frames + multipart) vs plain streamed copy (lib-storage Upload, 5 MiB parts, 4 at a time):');
for (const row of rows) console.log(`  ${row}`);
console.log(`  baseline RSS of the loaded function (the bundle imported, nothing done): ${fmt(median(loadedRss), 0)} MB (max ${fmt(Math.max(...loadedRss), 0)} MB)`);
const uploadMbps = (xs: number[]) => fmt(uploadRecording.size / MB / (median(xs) / 1000)).padStart(6);
const multipartRow = (name: string, run: MultipartRun, xs: number[]) =>
  `  ${name.padEnd(28)} ${fmt(median(xs), 0).padStart(6)} ms ${uploadMbps(xs)} MB/s | ratio ${fmt(median(xs) / median(putMs), 2)} (time, multipart / PutObject) | ` +
  `${run.partCount} parts of ${fmt(run.partSize / 2 ** 20, 0)} MiB, URLs from ${run.presignRequests} POST /files/{id}/parts, complete ${fmt(run.completeMs, 0)} ms`;
console.log(
  `\nupload of ${uploadMb} MB, streamed with fetch: the product's multipart (POST /files MULTIPART, part URLs signed by the product in batches of 20, ` +
    `4 part PUTs at a time, POST /files/{id}/complete) vs one presigned PutObject of the same bytes:`,
);
console.log(`  ${'PutObject'.padEnd(28)} ${fmt(median(putMs), 0).padStart(6)} ms ${uploadMbps(putMs)} MB/s`);
console.log(multipartRow('multipart, default part size', lastMultipart!, multipartMs));
console.log(multipartRow('multipart, 64 MiB parts asked', lastLargeParts!, largePartsMs));
console.log(
  `  bench process RSS ${fmt(rssBeforeUploads, 0)} MB before the uploads, peak ${fmt(uploadPeakRss, 0)} MB after them; ` +
    `the default-part upload processed: ${uploaded.status}, SHA-256 ${uploadedOk ? 'matches' : 'differs'}`,
);
console.log(
  `\nupload to ready (POST /files PUT, presigned PUT, then process-upload invoked in this process with the object-created event, ` +
    `until GET /files/{id} says ready; event delivery not included):`,
);
console.log(`  100 MB file: ${spread(readyMs)} (${readyMs.length} files)`);
console.log(`  10 kB file (the fixed cost per file): ${spread(tinyReadyMs)} (${tinyReadyMs.length} files)`);
console.log(
  `\nfirst audio byte of a 100 MB file (${reads} runs each, alternating; link: get-file handler invoked in-process with an API Gateway v2 event, ` +
    `no HTTP hop, 'Range: bytes=0-' answered 206 with ${fmt(firstByte.linkBytes / 2 ** 20, 1)} MiB, buffered as in Lambda; presigned: fetch over HTTP to its first body chunk):`,
);
console.log(`  link ${spread(firstByte.linkMs)} | presigned GET ${spread(firstByte.plainMs)} | ratio ${fmt(summary.firstByteRatio, 2)} (medians)`);
console.log(`\n1 MiB range read (${reads} random offsets in 100 MB, every reader at each offset, taking turns):`);
console.log(`  function (get-file via a playback link, in-process) ${spread(rangeMs.link)}`);
console.log(`  library (StorageService.getFile)                   ${spread(rangeMs.decrypted)}`);
console.log(`  SDK GET of the plaintext, unencrypted              ${spread(rangeMs.plain)}`);
console.log(`  SDK GET of the plaintext, MinIO SSE-S3             ${spread(rangeMs.sseS3)}`);
console.log(`  presigned GET of the ciphertext (fetch)            ${spread(rangeMs.ciphertext)}`);
console.log(
  `  ratios of medians: library / plain GET ${fmt(summary.rangeRatio, 2)}; link / presigned ciphertext GET ${fmt(summary.linkRangeRatio, 2)} ` +
    `(p95 ${fmt(percentile(rangeMs.link, 95) / percentile(rangeMs.ciphertext, 95), 2)})`,
);
console.log(
  `\nlease (${env.STORAGE_PROCESSING_LEASE_SECONDS} s, renewed every third): ${leaseWatch.tries} competing claims during the seals, ` +
    `${leaseWatch.takeovers} took a file over; ${leaseWatch.leasesSeen.size} distinct lease deadlines seen`,
);
if (leaseWatch.takeovers > 0) throw new Error('a running seal lost its file to a competing claim: its lease was not kept');

// Issue 13's targets, each on one line.
const TARGET_SIZES_MB = [100, 1000];
const bySize = (key: string, limit: number, digits: number, unit = '') =>
  TARGET_SIZES_MB.map((s) => {
    const value = summary[`${key}_${s}MB`];
    return value === undefined ? `${s} MB not measured (BENCH_SIZES_MB)` : `${s} MB ${fmt(value, digits)}${unit} ${verdict(value <= limit)}`;
  }).join(' | ');
const peaks = sizesMb.map((s) => summary[`peakRss_${s}MB`]!);
const smallest = Math.min(...sizesMb);
const largest = Math.max(...sizesMb);
const flatGrowth = summary[`peakRss_${largest}MB`]! - summary[`peakRss_${smallest}MB`]!;
const target = (label: string, text: string) => console.log(`  ${label.padEnd(48)} ${text}`);
console.log(`\ntargets of issue 13 (${rounds} rounds, medians; ${reads} reads per range reader):`);
target(`processing ≤ ${MAX_RATIO} × plain copy (wall time)`, bySize('ratio', MAX_RATIO, 2));
target(`extra CPU ≤ ${MAX_EXTRA_CPU_MS_PER_MB} ms/MB (process − copy)`, bySize('extraCpu', MAX_EXTRA_CPU_MS_PER_MB, 2, ' ms/MB'));
target(
  `peak RSS of processing ≤ ${MAX_PEAK_RSS_MB} MB`,
  `${sizesMb.map((s, i) => `${s} MB ${fmt(peaks[i]!, 0)} MB`).join(', ')} ` +
    `${verdict(Math.max(...peaks) <= MAX_PEAK_RSS_MB)} (loaded function alone ${fmt(median(loadedRss), 0)} MB)`,
);
target(
  `peak RSS flat (largest size ≤ smallest + ${FLAT_RSS_MB} MB)`,
  smallest === largest
    ? `not measured: one size (BENCH_SIZES_MB=${sizesMb.join(',')})`
    : `${largest} MB peak − ${smallest} MB peak = ${fmt(flatGrowth, 0)} MB ${verdict(flatGrowth <= FLAT_RSS_MB)}`,
);
target(
  `1 MiB range, function's code path ≤ ${MAX_RANGE_RATIO} × plain GET`,
  `${fmt(median(rangeMs.decrypted), 2)} / ${fmt(median(rangeMs.plain), 2)} ms = ${fmt(summary.rangeRatio, 2)} ${verdict(summary.rangeRatio <= MAX_RANGE_RATIO)}`,
);
target(
  `1 MiB range, function's code path ≤ ${MAX_RANGE_RATIO} × SSE-S3 GET`,
  `${fmt(median(rangeMs.decrypted), 2)} / ${fmt(median(rangeMs.sseS3), 2)} ms = ${fmt(summary.sseS3RangeRatio, 2)} ${verdict(summary.sseS3RangeRatio <= MAX_RANGE_RATIO)}`,
);
target(
  '1 MiB range, whole handler (no target)',
  `${fmt(median(rangeMs.link), 2)} / ${fmt(median(rangeMs.plain), 2)} ms = ${fmt(summary.handlerRangeRatio, 2)} × plain GET (token check, base64 of the Lambda response)`,
);
target(
  'upload to ready, 100 MB (no target)',
  `median ${fmt(median(readyMs), 0)} ms of ${readyMs.length}; ` +
    `fixed cost per file (10 kB) median ${fmt(median(tinyReadyMs), 1)} ms of ${tinyReadyMs.length}`,
);
