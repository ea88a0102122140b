/**
 * 1 MiB range reads of a 100 MB stored recording (issue 13, point 3), on the MinIO that
 * scripts/with-minio.ts starts:
 *
 *   node scripts/with-minio.ts node bench/range-reads.bench.ts      (BENCH_READS=60 for more)
 *
 * Three readers at the same random offsets, taking turns: a plain range GET of the same bytes
 * stored unencrypted; getFile through a service that has read the file before (a warm
 * process: its ready manifest cached, lib/service/ready-manifests.ts); getFile through a fresh
 * service each time (a cold process: manifest read beside the ciphertext GET). Every read is
 * checked byte for byte. Medians; only ratios from the same run mean anything here.
 */
import { env } from './bench-env.ts';
import { buffer } from 'node:stream/consumers';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { parseConfig } from '../lib/config.ts';
import { createStorageContext } from '../lib/storage/storage-context.ts';
import { StorageService } from '../lib/service/storage-service.ts';
import { median, percentile, sameAs, timeRangeReads } from './client-paths.ts';
import { SyntheticRecording } from './synthetic-recording.ts';

const MB = 1_000_000;
const MiB = 1024 * 1024;
const reads = Number(process.env.BENCH_READS ?? 40);
const config = parseConfig(env);
const ctx = createStorageContext(config);
const s3 = ctx.s3.internal;
for (const Bucket of [config.bucket, config.incomingBucket]) await s3.send(new CreateBucketCommand({ Bucket }));

const size = 100 * MB;
const recording = new SyntheticRecording(size);
const warm = new StorageService(ctx);
const stored = await warm.storeFile('bench', recording.stream(), { filename: 'r.wav', contentType: 'audio/wav', size });
await new Upload({ client: s3, params: { Bucket: config.bucket, Key: 'bench/plain', Body: recording.stream() } }).done();

const offsets = Array.from({ length: reads }, () => Math.floor(Math.random() * (size - MiB)));
const ms = await timeRangeReads(
  {
    plain: async (start, end) => {
      const out = await s3.send(new GetObjectCommand({ Bucket: config.bucket, Key: 'bench/plain', Range: `bytes=${start}-${end}` }));
      return out.Body!.transformToByteArray();
    },
    warm: async (start, end) => buffer((await warm.getFile('bench', stored.fileId, { range: { start, end } })).stream),
    cold: async (start, end) => buffer((await new StorageService(ctx).getFile('bench', stored.fileId, { range: { start, end } })).stream),
  },
  offsets,
  MiB,
  { plain: sameAs(recording, 'plain GET'), warm: sameAs(recording, 'warm getFile'), cold: sameAs(recording, 'cold getFile') },
);
await warm.deleteFile('bench', stored.fileId, { purge: true });
await s3.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: 'bench/plain' }));

const fmt = (x: number) => x.toFixed(2);
console.log(`1 MiB range reads of a 100 MB file, ${reads} random offsets, readers taking turns (Node ${process.version}):`);
for (const name of ['plain', 'warm', 'cold'] as const) {
  console.log(
    `  ${name.padEnd(5)} median ${fmt(median(ms[name]))} ms, p95 ${fmt(percentile(ms[name], 95))} ms` +
      (name === 'plain' ? '' : `, ratio to plain ${fmt(median(ms[name]) / median(ms.plain))} (goal ≤ 1.3)`),
  );
}
