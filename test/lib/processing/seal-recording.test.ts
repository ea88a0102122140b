import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealRecording, type SealInput } from '../../../lib/processing/seal-recording.ts';
import { UploadRejection } from '../../../lib/processing/upload-inspector.ts';
import { finalKey } from '../../../lib/storage/object-layout.ts';
import { wav } from '../../support/audio-fixtures.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * The one write path against a real MinIO, from the sources callers hand it: whatever the
 * stream yields or however it was left, the recording is stored whole or nothing is visible
 * under its key, and no multipart upload is left open.
 */

let env: MinioEnvironment;
beforeAll(async () => {
  env = await prepareMinioEnvironment();
});
afterAll(() => env.cleanup());

const MiB = 1024 * 1024;
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

function input(source: Readable, bytes: Buffer, extra: Partial<SealInput> = {}): SealInput {
  return {
    s3: env.ctx.s3.internal,
    bucket: env.config.bucket,
    fileId: randomUUID(),
    source,
    extension: 'wav',
    expectedSize: bytes.length,
    maxSize: 1 << 30,
    keyring: env.ctx.keyring,
    ...extra,
  };
}

async function nothingLeft(fileId: string) {
  await expect(env.admin.send(new HeadObjectCommand({ Bucket: env.config.bucket, Key: finalKey(fileId) }))).rejects.toMatchObject({ name: 'NotFound' });
  const open = await env.admin.send(new ListMultipartUploadsCommand({ Bucket: env.config.bucket, Prefix: finalKey(fileId) }));
  expect(open.Uploads ?? []).toEqual([]);
}

describe('sealRecording', () => {
  it('stores what a stream of Uint8Array chunks (object mode) holds, as it would Buffers', async () => {
    const bytes = wav(6 * MiB + 123);
    const chunks = Array.from({ length: Math.ceil(bytes.length / 100_000) }, (_, i) => new Uint8Array(bytes.subarray(i * 100_000, (i + 1) * 100_000)));
    const sealed = await sealRecording(input(Readable.from(chunks), bytes));
    expect(sealed).toMatchObject({ size: bytes.length, sha256: sha256(bytes), encrypted: true });
  });

  it('reads a source its maker had paused, rather than waiting for it for ever', async () => {
    const bytes = wav(200_000);
    const source = Readable.from([bytes]);
    source.pause();
    expect(await sealRecording(input(source, bytes))).toMatchObject({ sha256: sha256(bytes) });
  });

  it('refuses at once a source already closed, and stores nothing', async () => {
    const bytes = wav(200_000);
    const source = Readable.from([bytes]);
    source.destroy();
    const sealing = input(source, bytes);
    await expect(sealRecording(sealing)).rejects.toThrow();
    await nothingLeft(sealing.fileId);
  });

  it('a declared SHA-256 that differs is found before the object completes: nothing visible, no parts left', async () => {
    const bytes = wav(12 * MiB);
    const sealing = input(Readable.from([bytes]), bytes, { declaredSha256: '0'.repeat(64) });
    await expect(sealRecording(sealing)).rejects.toMatchObject({ constructor: UploadRejection, code: 'sha256_mismatch' });
    await nothingLeft(sealing.fileId);
  });

  it('a lease lost at the last moment (after every byte, before the completion) makes nothing visible', async () => {
    const bytes = wav(12 * MiB);
    const lease = new AbortController();
    // The source's end is the last thing before the writer completes.
    const source = Readable.from([bytes]).once('end', () => lease.abort(new Error('lease lost')));
    const sealing = input(source, bytes, { signal: lease.signal });
    await expect(sealRecording(sealing)).rejects.toThrow('lease lost');
    await nothingLeft(sealing.fileId);
  });
});
