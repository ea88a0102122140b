import { buffer } from 'node:stream/consumers';
import {
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadLetterStore } from '../../../lib/processing/dead-letters.ts';
import { processFile } from '../../../lib/processing/process-upload.ts';
import { sweep } from '../../../lib/processing/sweep.ts';
import { finalKey, incomingKey, manifestKey, pendingKey } from '../../../lib/storage/object-layout.ts';
import { sha256, wav } from '../../support/audio-fixtures.ts';
import { sendUpload } from '../../support/http-client.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * The sweep against a real MinIO: work no event brought, runs that died, files never
 * uploaded, debris. Ages are judged by the sweep's clock, which these tests set ahead
 * (`now`) instead of sleeping through leases and upload links.
 */

let env: MinioEnvironment;
const OWNER = 'sweeper';
const LEASE_S = 30;
const TTL_S = 60;
const GRACE_S = 10;
const MULTIPART_TTL_S = 600;

beforeAll(async () => {
  env = await prepareMinioEnvironment({
    STORAGE_PROCESSING_LEASE_SECONDS: String(LEASE_S),
    STORAGE_UPLOAD_URL_TTL_SECONDS: String(TTL_S),
    STORAGE_UPLOAD_GRACE_SECONDS: String(GRACE_S),
    STORAGE_MULTIPART_UPLOAD_TTL_SECONDS: String(MULTIPART_TTL_S),
  });
});
afterAll(() => env.cleanup());

const afterLease = () => Date.now() + (LEASE_S + 5) * 1000;
const afterLink = () => Date.now() + (TTL_S + GRACE_S + 5) * 1000;
const afterMultipartWindow = () => Date.now() + (MULTIPART_TTL_S + GRACE_S + 5) * 1000;
const openUploads = async () =>
  ((await env.admin.send(new ListMultipartUploadsCommand({ Bucket: env.config.incomingBucket }))).Uploads ?? []).map((u) => u.UploadId);

/** A client's upload whose object-created event never arrives. */
async function lostUpload(bytes: Buffer): Promise<string> {
  const created = await env.service.createUpload(OWNER, { filename: 'lost.wav', contentType: 'audio/wav', size: bytes.length });
  expect((await sendUpload(created.upload, bytes)).status).toBe(204);
  return created.fileId;
}

/** What another run would have written: through the manifest store, since manifests are sealed. */
async function editManifest(fileId: string, change: (manifest: any) => void): Promise<void> {
  const { manifest, etag } = (await env.ctx.manifests.read(fileId))!;
  change(manifest);
  expect(await env.ctx.manifests.replace(manifest, etag)).toBeTruthy();
}

async function contentOf(fileId: string): Promise<Buffer> {
  return buffer((await env.service.getFile(OWNER, fileId)).stream);
}

const traces = async (fileId: string) =>
  [...(await env.keys(env.config.bucket)), ...(await env.keys(env.config.incomingBucket))].filter((k) => k.includes(fileId) && !k.startsWith('usage/')).sort(); // usage/: the ledger's (test/lib/storage/usage-ledger.test.ts)

describe('sweep', () => {
  it('processes an upload whose event never came, once it is older than a lease, and leaves only the file', async () => {
    const bytes = wav(700_000);
    const fileId = await lostUpload(bytes);

    const early = await sweep(env.ctx);
    expect(early.processed.map((o) => o.fileId)).not.toContain(fileId);
    expect((await env.service.getFileInfo(OWNER, fileId)).status).toBe('awaiting_upload');

    const report = await sweep(env.ctx, { now: afterLease() });
    expect(report.processed).toContainEqual({ outcome: 'ready', fileId });
    expect(await env.service.getFileInfo(OWNER, fileId)).toMatchObject({ status: 'ready', sha256: sha256(bytes) });
    expect((await contentOf(fileId)).equals(bytes)).toBe(true);
    expect(await traces(fileId)).toEqual([finalKey(fileId), manifestKey(fileId)]);
  });

  it('takes over the file of a run that died mid-way, and aborts the multipart upload it left', async () => {
    const bytes = wav(6 * 1024 * 1024);
    const fileId = await lostUpload(bytes);
    // What a killed run leaves: a claim whose lease ran out, and parts of the final object.
    await editManifest(fileId, (m) => {
      m.status = 'processing';
      m.attempts = 1;
      m.leaseUntil = new Date(Date.now() - 1000).toISOString();
    });
    const { UploadId } = await env.admin.send(new CreateMultipartUploadCommand({ Bucket: env.config.bucket, Key: finalKey(fileId) }));
    await env.admin.send(
      new UploadPartCommand({ Bucket: env.config.bucket, Key: finalKey(fileId), UploadId, PartNumber: 1, Body: Buffer.alloc(5 * 1024 * 1024) }),
    );

    const report = await sweep(env.ctx, { now: afterLease() });
    expect(report.processed).toContainEqual({ outcome: 'ready', fileId });
    expect(report.multipartAborted).toBeGreaterThanOrEqual(1);
    expect((await contentOf(fileId)).equals(bytes)).toBe(true);
    const open = await env.admin.send(new ListMultipartUploadsCommand({ Bucket: env.config.bucket }));
    expect((open.Uploads ?? []).map((u) => u.UploadId)).not.toContain(UploadId);
    expect((await env.service.getFileInfo(OWNER, fileId)).status).toBe('ready');
  });

  it('aborts a multipart upload whose file does not exist once a lease old, and no younger one', async () => {
    const orphan = await env.admin.send(new CreateMultipartUploadCommand({ Bucket: env.config.incomingBucket, Key: incomingKey('0b8a3c1e-0000-4000-8000-00000000beef') }));
    await sweep(env.ctx);
    expect(await openUploads()).toContain(orphan.UploadId);
    await sweep(env.ctx, { now: afterLease() });
    expect(await openUploads()).not.toContain(orphan.UploadId);
  });

  it('keeps a resumable upload while its file awaits it, then aborts it and marks the file expired after its window and grace', async () => {
    const bytes = wav(6 * 1024 * 1024);
    const created = await env.service.createUpload(OWNER, { filename: 'slow phone.wav', contentType: 'audio/wav', size: bytes.length, uploadMethod: 'MULTIPART' });
    const { fileId } = created;
    const signed = await env.service.presignParts(OWNER, fileId, [1]);
    expect((await fetch(signed.parts[0]!.url, { method: 'PUT', body: bytes.subarray(0, signed.partSize) })).status).toBe(200);
    // A second upload on the same key, never bound (a client that created one and went away).
    const stray = await env.admin.send(new CreateMultipartUploadCommand({ Bucket: env.config.incomingBucket, Key: incomingKey(fileId) }));

    // Well past a single upload link: the bound upload stays (its window is the multipart one), the stray one goes.
    await sweep(env.ctx, { now: afterLink() });
    expect(await openUploads()).toContain(signed.uploadId);
    expect(await openUploads()).not.toContain(stray.UploadId);
    expect((await env.service.getFileInfo(OWNER, fileId)).status).toBe('awaiting_upload');

    await sweep(env.ctx, { now: afterMultipartWindow() });
    expect(await openUploads()).not.toContain(signed.uploadId);
    expect((await env.service.getFileInfo(OWNER, fileId)).status).toBe('expired');
    expect(await env.keys(env.config.bucket)).not.toContain(pendingKey(fileId));
  });

  it('leaves alone a file whose run still holds its lease', async () => {
    const fileId = await lostUpload(wav(1000));
    await editManifest(fileId, (m) => {
      m.status = 'processing';
      m.attempts = 1;
      m.leaseUntil = new Date(Date.now() + 10 * LEASE_S * 1000).toISOString();
    });
    const report = await sweep(env.ctx, { now: afterLease() });
    expect(report.processed.map((o) => o.fileId)).not.toContain(fileId);
    expect((await env.service.getFileInfo(OWNER, fileId)).status).toBe('processing');
    expect(await env.keys(env.config.incomingBucket)).toContain(incomingKey(fileId));
  });

  it('marks a file never uploaded as expired after its link and grace, and a late upload then leaves nothing', async () => {
    const created = await env.service.createUpload(OWNER, { filename: 'never.wav', contentType: 'audio/wav', size: 1000 });
    const fileId = created.fileId;
    await sweep(env.ctx, { now: afterLease() });
    expect((await env.service.getFileInfo(OWNER, fileId)).status).toBe('awaiting_upload');

    const report = await sweep(env.ctx, { now: afterLink() });
    expect(report.expired).toBeGreaterThanOrEqual(1);
    const info = await env.service.getFileInfo(OWNER, fileId);
    expect(info).toMatchObject({ status: 'expired', reason: expect.stringMatching(/no upload/) });
    expect(await traces(fileId)).toEqual([manifestKey(fileId)]);

    // The link is still within MinIO's lifetime here: a client that uploads now finds the file expired.
    expect((await sendUpload(created.upload, wav(1000))).status).toBe(204);
    expect(await processFile(env.ctx, fileId, 'event')).toMatchObject({ outcome: 'skipped', reason: 'already expired' });
    expect(await traces(fileId)).toEqual([manifestKey(fileId)]);
  });

  it('gives up on a file whose runs all died, files a dead letter, and keeps its upload', async () => {
    const fileId = await lostUpload(wav(2000));
    await editManifest(fileId, (m) => {
      m.status = 'processing';
      m.attempts = env.config.processing.maxAttempts;
      m.leaseUntil = new Date(Date.now() - 1000).toISOString();
    });
    const report = await sweep(env.ctx, { now: afterLease() });
    expect(report.processed).toContainEqual({ outcome: 'failed', fileId, reason: 'attempts used up' });
    expect(await env.service.getFileInfo(OWNER, fileId)).toMatchObject({ status: 'failed', reason: expect.stringMatching(/did not finish after 3 attempts/) });
    expect(await traces(fileId)).toEqual([manifestKey(fileId), incomingKey(fileId)].sort());
    const letters = [];
    for await (const letter of deadLetterStore(env.config, env.ctx.s3.internal).receive(100)) letters.push(letter);
    expect(letters.some((l) => JSON.stringify(l.letter).includes(fileId))).toBe(true);
  });

  it('files the dead letter a failing run died before filing, once', async () => {
    const fileId = await lostUpload(wav(2000));
    await editManifest(fileId, (m) => {
      m.status = 'failed';
      m.attempts = 3;
      m.reason = 'processing failed after 3 attempts (StorageConnectionError)';
    });
    const lettersFor = async () => {
      let n = 0;
      for await (const letter of deadLetterStore(env.config, env.ctx.s3.internal).receive(1000)) {
        if (JSON.stringify(letter.letter).includes(fileId)) n++;
      }
      return n;
    };
    await sweep(env.ctx, { now: afterLease() });
    await sweep(env.ctx, { now: afterLease() });
    expect(await lettersFor()).toBe(1);
    expect(await traces(fileId)).toEqual([manifestKey(fileId), incomingKey(fileId)].sort());
  });

  it('removes the leftovers of settled and deleted files: uploads without a manifest, stale markers', async () => {
    const orphan = '0b8a3c1e-0000-4000-8000-00000000abcd';
    await env.admin.send(new PutObjectCommand({ Bucket: env.config.incomingBucket, Key: incomingKey(orphan), Body: wav(100) }));
    const bytes = wav(3000);
    const ready = await lostUpload(bytes);
    await processFile(env.ctx, ready, 'event');
    // A run that crashed after its commit: the upload and marker it should have removed.
    await env.admin.send(new PutObjectCommand({ Bucket: env.config.incomingBucket, Key: incomingKey(ready), Body: bytes }));
    await env.ctx.pending.add(ready);

    await sweep(env.ctx, { now: afterLink() });
    expect(await traces(orphan)).toEqual([]);
    expect(await traces(ready)).toEqual([finalKey(ready), manifestKey(ready)]);
    expect((await contentOf(ready)).equals(bytes)).toBe(true);
  });

  it('clears what a run completed after its file was deleted, once no run can still write', async () => {
    const fileId = await lostUpload(wav(4000));
    await editManifest(fileId, (m) => {
      m.status = 'processing';
      m.leaseUntil = new Date(Date.now() + 1000).toISOString();
    });
    await env.service.deleteFile(OWNER, fileId);
    // The run, not yet aware of the delete, completes its object.
    await env.admin.send(new PutObjectCommand({ Bucket: env.config.bucket, Key: finalKey(fileId), Body: 'ciphertext' }));

    await sweep(env.ctx);
    expect(await traces(fileId)).toEqual([finalKey(fileId), pendingKey(fileId)]);
    await sweep(env.ctx, { now: Date.now() + 3 * LEASE_S * 1000 });
    expect(await traces(fileId)).toEqual([]);
  });

  it('is harmless twice at once: every lost upload is stored exactly once', async () => {
    const uploads = await Promise.all([1, 2, 3, 4].map((n) => wav(200_000 * n)).map(async (bytes) => ({ bytes, fileId: await lostUpload(bytes) })));
    const now = afterLease();
    const [a, b] = await Promise.all([sweep(env.ctx, { now }), sweep(env.ctx, { now })]);
    expect(a.errors + b.errors).toBe(0);
    for (const { bytes, fileId } of uploads) {
      const outcomes = [...a.processed, ...b.processed].filter((o) => o.fileId === fileId).map((o) => o.outcome);
      expect(outcomes.filter((o) => o === 'ready')).toHaveLength(1);
      expect((await contentOf(fileId)).equals(bytes)).toBe(true);
      expect(await traces(fileId)).toEqual([finalKey(fileId), manifestKey(fileId)]);
    }
  });
});
