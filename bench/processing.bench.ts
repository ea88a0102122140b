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
 * What clients do (issue 7, bench/client-paths.ts): a resumable upload of the largest size through
 * the product, 4 parts at a time, against one presigned PutObject; the first audio byte and
 * 1 MiB ranges through a playback link against presigned GETs of the ciphertext (goal ≤ 1.5×).
 */
import { env } from './bench-env.ts';
import { buffer } from 'node:stream/consumers';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CopyObjectCommand, CreateBucketCommand, DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
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
  timeRangeReads,
  uploadMultipart,
  type Caller,
  type MultipartRun,
} from './client-paths.ts';
import { SyntheticRecording } from './synthetic-recording.ts';

const MB = 1_000_000;
const sizesMb = (process.env.BENCH_SIZES_MB ?? '100,1000').split(',').map(Number);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const reads = Number(process.env.BENCH_READS ?? 30);

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

// Reads of a 100 MB file. The first audio byte: a media player's `bytes=0-` through a playback
// link vs a presigned GET of the ciphertext. Then 1 MiB ranges at random offsets: the library
// (decrypting only the frames touched) vs a plain range GET of the same plaintext stored
// unencrypted; and the link vs a presigned range GET of the ciphertext. Plaintext reads are
// checked byte for byte against the recording.
const rangeSize = 100 * MB;
const rangeRecording = new SyntheticRecording(rangeSize);
const encrypted = await service.storeFile('bench', rangeRecording.stream(), { filename: 'r.wav', contentType: 'audio/wav', size: rangeSize });
await new Upload({ client: s3, params: { Bucket: config.bucket, Key: 'bench/plain', Body: rangeRecording.stream() } }).done();
const firstByte = await firstByteTimes(caller, encrypted.fileId, reads, rangeRecording);
summary.firstByteRatio = median(firstByte.linkMs) / median(firstByte.plainMs);

const MiB = 1024 * 1024;
const offsets = Array.from({ length: reads }, () => Math.floor(Math.random() * (rangeSize - MiB)));
const linkPath = await playbackLinkPath(caller, encrypted.fileId);
const ciphertextUrl = await presignedCiphertextUrl(caller, encrypted.fileId);
const rangeMs = await timeRangeReads(
  {
    plain: async (start, end) => {
      const plain = await s3.send(new GetObjectCommand({ Bucket: config.bucket, Key: 'bench/plain', Range: `bytes=${start}-${end}` }));
      return plain.Body!.transformToByteArray();
    },
    decrypted: async (start, end) => buffer((await service.getFile('bench', encrypted.fileId, { range: { start, end } })).stream),
    link: linkRangeReader(linkPath, encrypted.fileId),
    ciphertext: presignedRangeReader(ciphertextUrl),
  },
  offsets,
  MiB,
  { plain: sameAs(rangeRecording, 'plain GET'), decrypted: sameAs(rangeRecording, 'library'), link: sameAs(rangeRecording, 'link') },
);
await service.deleteFile('bench', encrypted.fileId);
await s3.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: 'bench/plain' }));
summary.rangeRatio = median(rangeMs.decrypted) / median(rangeMs.plain);
summary.linkRangeRatio = median(rangeMs.link) / median(rangeMs.ciphertext);
await rm(jobDir, { recursive: true, force: true });

console.log(`\nTranscribo storage bench — Node ${process.version}, jobs run with ${nodeOptions.join(' ')}, ${rounds} rounds, medians\n`);
console.log('processing (inspect + SHA-256 + AES-256-GCM frames + multipart) vs plain streamed copy:');
for (const row of rows) console.log(`  ${row}`);
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
  `\nfirst audio byte of a 100 MB file (${reads} runs each, alternating; link: get-file handler invoked in-process with an API Gateway v2 event, ` +
    `no HTTP hop, 'Range: bytes=0-' answered 206 with ${fmt(firstByte.linkBytes / 2 ** 20, 1)} MiB, buffered as in Lambda; presigned: fetch over HTTP to its first body chunk):`,
);
console.log(`  link ${spread(firstByte.linkMs)} | presigned GET ${spread(firstByte.plainMs)} | ratio ${fmt(summary.firstByteRatio, 2)} (medians)`);
console.log(`\n1 MiB range read (${reads} random offsets in 100 MB, every reader at each offset, taking turns):`);
console.log(`  plain GET ${fmt(median(rangeMs.plain), 2)} ms, decrypted ${fmt(median(rangeMs.decrypted), 2)} ms, ratio ${fmt(summary.rangeRatio, 2)} (library vs SDK GET of the plaintext)`);
console.log(
  `  link ${spread(rangeMs.link)} | presigned range GET of the ciphertext ${spread(rangeMs.ciphertext)} | ` +
    `ratio ${fmt(summary.linkRangeRatio, 2)} (medians; p95 ${fmt(percentile(rangeMs.link, 95) / percentile(rangeMs.ciphertext, 95), 2)}) → goal ≤ 1.5 ${summary.linkRangeRatio <= 1.5 ? 'met' : 'NOT met'}`,
);
console.log(
  `\nlease (${env.STORAGE_PROCESSING_LEASE_SECONDS} s, renewed every third): ${leaseWatch.tries} competing claims during the seals, ` +
    `${leaseWatch.takeovers} took a file over; ${leaseWatch.leasesSeen.size} distinct lease deadlines seen`,
);
if (leaseWatch.takeovers > 0) throw new Error('a running seal lost its file to a competing claim: its lease was not kept');
const rss = sizesMb.map((s) => summary[`peakRss_${s}MB`]!);
console.log(`\ntargets: ratio ≤ 1.25 → ${sizesMb.map((s) => fmt(summary[`ratio_${s}MB`]!, 2)).join(', ')}; ` +
  `peak RSS ≤ 200 MB and flat → ${rss.map((r) => fmt(r, 0)).join(' MB, ')} MB; ` +
  `link 1 MiB range ≤ 1.5× a presigned GET → ${fmt(summary.linkRangeRatio, 2)}`);
