import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as getInfo } from '../../functions/get-file-info.ts';
import { handler as processUpload } from '../../functions/process-upload.ts';
import { finalKey, incomingKey, manifestKey } from '../../lib/storage/object-layout.ts';
import { m4a, mp3, mp3FrameSync, notAudio, sha256, wav } from '../support/audio-fixtures.ts';
import { notifyUploaded, requestUpload, uploadRecording } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { sendUpload } from '../support/http-client.ts';
import { apiEvent, lambdaContext, s3Event } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

let env: MinioEnvironment;
let token: string;

beforeAll(async () => {
  env = await prepareMinioEnvironment();
  token = await env.token('alice');
});
afterAll(() => env.cleanup());

const info = async (fileId: string) => (await invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token }))).json;
const run = (event: unknown) => (processUpload as (e: unknown, c: unknown) => Promise<{ results: any[] }>)(event, lambdaContext());

async function uploadOnly(bytes: Buffer, body: Record<string, unknown> = {}) {
  const created = await requestUpload(token, { filename: 'a.wav', contentType: 'audio/wav', size: bytes.length, ...body });
  expect(created.status).toBe(201);
  const sent = await sendUpload(created.json.upload, bytes);
  expect(sent.status).toBeLessThan(300);
  return created.json.fileId as string;
}

describe('process-upload', () => {
  it.each([
    ['wav', wav(300_000)],
    ['mp3', mp3(70_000)],
    ['mp3', mp3FrameSync(5_000)],
    ['m4a', m4a(150_000)],
  ] as const)('stores a %s upload encrypted, hashed, and removes the upload', async (extension, bytes) => {
    const fileId = await uploadRecording(env, token, bytes, extension);
    const described = await info(fileId);
    expect(described).toMatchObject({ fileId, status: 'ready', size: bytes.length, sha256: sha256(bytes), encrypted: true });
    const stored = await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: finalKey(fileId) }));
    const cipher = Buffer.from(await stored.Body!.transformToByteArray());
    expect(cipher.length).toBeGreaterThan(bytes.length);
    expect(cipher.includes(bytes.subarray(100, 164))).toBe(false);
    expect(stored.Metadata).toMatchObject({ 'enc-kek': 'k1' });
    expect(await env.keys(env.config.incomingBucket)).not.toContain(incomingKey(fileId));
  });

  it('accepts AWS-style records and keys URL-encoded by the notification', async () => {
    const fileId = await uploadOnly(wav(1000));
    const result = await run(s3Event(env.config.incomingBucket, incomingKey(fileId), { flavour: 'aws' }));
    expect(result.results[0]).toMatchObject({ outcome: 'ready', fileId });
  });

  it.each([
    ['magic bytes of another format', () => ({ bytes: mp3(4000), filename: 'a.wav' }), /mp3 audio but the file was declared as wav/],
    ['no audio at all', () => ({ bytes: notAudio(4000), filename: 'a.wav' }), /not a recognised wav/],
  ])('rejects %s, with a reason, and removes the upload', async (_name, make, reason) => {
    const { bytes, filename } = make();
    const fileId = await uploadOnly(bytes, { filename });
    const result = await notifyUploaded(env, fileId);
    expect(result.results[0]).toMatchObject({ outcome: 'rejected', fileId });
    const described = await info(fileId);
    expect(described.status).toBe('rejected');
    expect(described.reason).toMatch(reason);
    expect(await env.keys(env.config.incomingBucket)).not.toContain(incomingKey(fileId));
    expect(await env.keys(env.config.bucket)).not.toContain(finalKey(fileId));
  });

  it('rejects content that does not match the declared SHA-256 and keeps no final object', async () => {
    const bytes = wav(200_000);
    const fileId = await uploadOnly(bytes, { sha256: sha256(wav(200_000)) });
    await notifyUploaded(env, fileId);
    const described = await info(fileId);
    expect(described.status).toBe('rejected');
    expect(described.reason).toMatch(/SHA-256/);
    expect(await env.keys(env.config.bucket)).not.toContain(finalKey(fileId));
  });

  it('accepts content matching the declared SHA-256', async () => {
    const bytes = wav(20_000);
    const fileId = await uploadOnly(bytes, { sha256: sha256(bytes).toUpperCase() });
    await notifyUploaded(env, fileId);
    expect((await info(fileId)).status).toBe('ready');
  });

  it('rejects an object whose real size differs from the manifest (written around the presigned policy)', async () => {
    const created = await requestUpload(token, { filename: 'a.wav', contentType: 'audio/wav', size: 5000 });
    const fileId = created.json.fileId;
    await env.admin.send(new PutObjectCommand({ Bucket: env.config.incomingBucket, Key: incomingKey(fileId), Body: wav(6000) }));
    await notifyUploaded(env, fileId);
    const described = await info(fileId);
    expect(described.status).toBe('rejected');
    expect(described.reason).toMatch(/6000 bytes but 5000 were declared/);
  });

  it('is idempotent: the same event twice, in turn, yields one final object and no error', async () => {
    const bytes = wav(100_000);
    const fileId = await uploadOnly(bytes);
    const event = s3Event(env.config.incomingBucket, incomingKey(fileId), { flavour: 'minio' });
    const first = await run(event);
    const stored = await env.admin.send(new HeadObjectCommand({ Bucket: env.config.bucket, Key: finalKey(fileId) }));
    const second = await run(event);
    expect(first.results[0].outcome).toBe('ready');
    expect(second.results[0]).toMatchObject({ outcome: 'skipped' });
    const again = await env.admin.send(new HeadObjectCommand({ Bucket: env.config.bucket, Key: finalKey(fileId) }));
    expect(again.ETag).toBe(stored.ETag);
    expect((await info(fileId)).status).toBe('ready');
  });

  it('is idempotent under concurrent delivery: exactly one run stores the file', async () => {
    const fileId = await uploadOnly(wav(400_000));
    const event = s3Event(env.config.incomingBucket, incomingKey(fileId), { flavour: 'minio' });
    const outcomes = await Promise.all([run(event), run(event), run(event)]);
    const kinds = outcomes.map((o) => o.results[0].outcome).sort();
    // The others find the winner's claim and defer to it; none reports an error.
    expect(kinds).toEqual(['deferred', 'deferred', 'ready']);
    expect((await info(fileId)).status).toBe('ready');
    expect((await env.keys(env.config.bucket)).filter((k) => k === finalKey(fileId))).toHaveLength(1);
  });

  it('skips events for objects already gone, for unknown files, and for keys that are not uploads', async () => {
    const gone = await uploadOnly(wav(1000));
    await notifyUploaded(env, gone);
    const result = await notifyUploaded(env, gone);
    expect(result.results[0]).toMatchObject({ outcome: 'skipped' });

    const stray = await run(s3Event(env.config.incomingBucket, 'uploads/not-a-file-id'));
    expect(stray.results[0]).toMatchObject({ outcome: 'skipped', reason: 'not an upload' });
    // A key that is not valid percent-encoding: skipped, not an error the trigger would re-send forever.
    const poison = s3Event(env.config.incomingBucket, 'x', { flavour: 'minio' });
    poison.Records[0]!.s3.object.key = 'uploads%2F%E0%A4%A';
    expect((await run(poison)).results[0]).toMatchObject({ outcome: 'skipped', reason: 'not an upload' });
    const otherBucket = await run(s3Event('some-other-bucket', incomingKey(gone)));
    expect(otherBucket.results[0]).toMatchObject({ outcome: 'skipped', reason: 'not an upload' });
    const removal = await run({ Records: [{ eventName: 's3:ObjectRemoved:Delete', s3: { bucket: { name: env.config.incomingBucket }, object: { key: incomingKey(gone) } } }] });
    expect(removal.results).toEqual([]);
  });

  it('removes an upload whose file no longer exists (deleted before its event)', async () => {
    const fileId = '0b8a3c1e-0000-4000-8000-000000000001';
    await env.admin.send(new PutObjectCommand({ Bucket: env.config.incomingBucket, Key: incomingKey(fileId), Body: wav(100) }));
    const result = await notifyUploaded(env, fileId);
    expect(result.results[0]).toMatchObject({ outcome: 'skipped', fileId });
    expect(await env.keys(env.config.incomingBucket)).not.toContain(incomingKey(fileId));
  });

  it('does not touch another in-flight run: a live lease makes a second delivery defer', async () => {
    const fileId = await uploadOnly(wav(1000));
    // Another run's claim, written as it would write it (manifests are sealed: through the store).
    const read = (await env.ctx.manifests.read(fileId))!;
    const manifest = { ...read.manifest, status: 'processing' as const, leaseUntil: new Date(Date.now() + 60_000).toISOString() };
    const etag = (await env.ctx.manifests.replace(manifest, read.etag))!;
    const result = await notifyUploaded(env, fileId);
    expect(result.results[0]).toMatchObject({ outcome: 'deferred', reason: 'being processed by another run' });
    expect(await env.ctx.manifests.replace({ ...manifest, leaseUntil: new Date(Date.now() - 1000).toISOString() }, etag)).toBeTruthy();
    const retried = await notifyUploaded(env, fileId);
    expect(retried.results[0]).toMatchObject({ outcome: 'ready' });
  });

  it('leaves the object of a run that took the file over when its own lease had run out', async () => {
    const fileId = await uploadOnly(wav(40_000_000));
    const running = notifyUploaded(env, fileId);
    // As soon as this run has claimed the file, another run "takes it over" (a new manifest version).
    for (let i = 0; i < 2000; i++) {
      const { manifest, etag } = (await env.ctx.manifests.read(fileId))!;
      if (manifest.status === 'processing') {
        expect(await env.ctx.manifests.replace({ ...manifest, leaseUntil: new Date(Date.now() + 60_000).toISOString() }, etag)).toBeTruthy();
        break;
      }
    }
    const result = await running;
    expect(result.results[0]).toMatchObject({ outcome: 'skipped', reason: 'taken over by another run' });
    expect(await env.keys(env.config.bucket)).toContain(finalKey(fileId));
  });
});
