import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  firstByteTimes,
  linkRangeReader,
  playbackLinkPath,
  presignedCiphertextUrl,
  presignedRangeReader,
  processUploaded,
  putWhole,
  readLink,
  sameAs,
  sdkRangeReader,
  startSseS3Store,
  timeRangeReads,
  uploadMultipart,
  uploadToReady,
  type Caller,
} from '../../bench/client-paths.ts';
import { SyntheticRecording } from '../../bench/synthetic-recording.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

/**
 * `npm run bench`'s client paths (bench/client-paths.ts) at a small size: the same code, checked
 * for what it does, never for how fast (these machines are too noisy for timed tests).
 */
const MiB = 1024 * 1024;
let env: MinioEnvironment;
let caller: Caller;

beforeAll(async () => {
  env = await prepareMinioEnvironment({ STORAGE_MAX_FILE_SIZE: String(64 * MiB) });
  caller = { ctx: env.ctx, owner: 'bench', token: await env.token('bench') };
});
afterAll(() => env.cleanup());

describe('bench: uploads', () => {
  it('the product multipart upload (4 parts at a time, URLs in batches) processes to ready and identical; the PutObject baseline stores the same bytes', async () => {
    const recording = new SyntheticRecording(12 * 1_000_000 + 345);
    await putWhole(caller, recording, 'bench/put');
    const head = await env.admin.send(new HeadObjectCommand({ Bucket: env.config.incomingBucket, Key: 'bench/put' }));
    expect(head.ContentLength).toBe(recording.size);

    const run = await uploadMultipart(caller, recording, { parallel: 4, batch: 2, partSize: 5 * MiB });
    expect(run).toMatchObject({ partSize: 5 * MiB, partCount: 3, presignRequests: 2 });
    const info = await processUploaded(caller, run.fileId);
    expect(info).toMatchObject({ status: 'ready', size: recording.size, sha256: recording.sha256() });
  });

  it('a PUT upload is timed from its last byte to ready, for a 10 kB file as for a larger one', async () => {
    for (const recording of [new SyntheticRecording(10_000), new SyntheticRecording(6 * MiB + 1)]) {
      const run = await uploadToReady(caller, recording);
      expect(run.readyMs).toBeGreaterThan(0);
      expect(await env.service.getFileInfo('bench', run.fileId)).toMatchObject({ status: 'ready', size: recording.size, sha256: recording.sha256() });
    }
  });
});

describe('bench: reads through a playback link', () => {
  it('first byte and range reads serve the recording\'s bytes, and the baselines read the ciphertext', async () => {
    const recording = new SyntheticRecording(6 * MiB + 123);
    const stored = await env.service.storeFile('bench', recording.stream(), { filename: 'r.wav', contentType: 'audio/wav', size: recording.size });

    const first = await firstByteTimes(caller, stored.fileId, 3, recording);
    expect(first.linkMs).toHaveLength(3);
    expect(first.plainMs).toHaveLength(3);
    expect(first.linkBytes).toBe(Math.min(recording.size, env.config.maxResponseBytes));

    const linkPath = await playbackLinkPath(caller, stored.fileId);
    const offsets = [0, 1, 64 * 1024 - 7, recording.size - MiB];
    const times = await timeRangeReads(
      { link: linkRangeReader(linkPath, stored.fileId), ciphertext: presignedRangeReader(await presignedCiphertextUrl(caller, stored.fileId)) },
      offsets,
      MiB,
      { link: sameAs(recording, 'link') },
    );
    expect(times.link).toHaveLength(offsets.length);
    expect(times.ciphertext).toHaveLength(offsets.length);

    // The plaintext baselines: an SDK range GET of it stored unencrypted, and of it on a MinIO of its own with SSE-S3.
    await env.admin.send(new PutObjectCommand({ Bucket: env.config.bucket, Key: 'bench/plain', Body: recording.bytes(0, recording.size) }));
    const sse = await startSseS3Store(recording);
    try {
      const plain = await timeRangeReads(
        { plain: sdkRangeReader(env.ctx.s3.internal, env.config.bucket, 'bench/plain'), sseS3: sse.reader },
        offsets,
        MiB,
        { plain: sameAs(recording, 'plain GET'), sseS3: sameAs(recording, 'SSE-S3 GET') },
      );
      expect(plain.sseS3).toHaveLength(offsets.length);
    } finally {
      await sse.stop();
    }

    // The checks themselves catch wrong bytes: the ciphertext is not the recording.
    await expect(
      timeRangeReads({ ciphertext: presignedRangeReader(await presignedCiphertextUrl(caller, stored.fileId)) }, [0], MiB, { ciphertext: sameAs(recording, 'ciphertext') }),
    ).rejects.toThrow(/differ/);
    // And a link made for another file serves nothing.
    const other = await env.service.storeFile('bench', new SyntheticRecording(1000).stream(), { filename: 'o.wav', contentType: 'audio/wav', size: 1000 });
    await expect(readLink(linkPath.replace(stored.fileId, other.fileId), other.fileId, 'bytes=0-')).rejects.toThrow(/HTTP 401/);
  });
});
