import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as createUpload } from '../../functions/create-upload.ts';
import { incomingKey, manifestKey } from '../../lib/storage/object-layout.ts';
import { wav } from '../support/audio-fixtures.ts';
import { invoke } from '../support/handlers.ts';
import { sendUpload } from '../support/http-client.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';
import { handler as getInfo } from '../../functions/get-file-info.ts';
import { notifyUploaded, requestUpload } from '../support/file-flow.ts';

let env: MinioEnvironment;
let token: string;

beforeAll(async () => {
  env = await prepareMinioEnvironment({ STORAGE_MAX_FILE_SIZE: String(1024 * 1024) });
  token = await env.token('alice');
});
afterAll(() => env.cleanup());

const valid = { filename: 'interview.wav', contentType: 'audio/wav', size: 2048 };

describe('POST /files', () => {
  it('records a manifest and returns a presigned POST for the incoming bucket', async () => {
    const reply = await requestUpload(token, valid);
    expect(reply.status).toBe(201);
    const { fileId, status, upload, expiresAt } = reply.json;
    expect(fileId).toMatch(/^[0-9a-f-]{36}$/);
    expect(status).toBe('awaiting_upload');
    expect(upload.method).toBe('POST');
    expect(upload.url).toContain(env.config.incomingBucket);
    expect(upload.fields.key).toBe(incomingKey(fileId));
    expect(upload.fields.key).not.toContain('interview');
    expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());
    expect((await env.ctx.manifests.read(fileId))!.manifest).toMatchObject({ owner: 'alice', filename: 'interview.wav', size: 2048, status: 'awaiting_upload' });
    // At rest, what names the person is sealed; what operations need stays readable.
    const raw = await (await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: manifestKey(fileId) }))).Body!.transformToString();
    expect(raw).not.toMatch(/alice|interview/);
    expect(JSON.parse(raw)).toMatchObject({ version: 2, fileId, size: 2048, status: 'awaiting_upload' });
  });

  it.each([
    ['malformed JSON', '{"filename":', 400, 'ValidationError'],
    ['a wrong extension', JSON.stringify({ ...valid, filename: 'notes.pdf' }), 400, 'ValidationError'],
    ['no extension', JSON.stringify({ ...valid, filename: 'recording' }), 400, 'ValidationError'],
    ['a content type that does not fit', JSON.stringify({ ...valid, contentType: 'audio/mpeg' }), 400, 'ValidationError'],
    ['a size over the limit', JSON.stringify({ ...valid, size: 1024 * 1024 + 1 }), 413, 'StorageFileSizeError'],
    ['a zero size', JSON.stringify({ ...valid, size: 0 }), 400, 'ValidationError'],
    ['a bad sha256', JSON.stringify({ ...valid, sha256: 'abc' }), 400, 'ValidationError'],
    ['an unknown field', JSON.stringify({ ...valid, bucket: 'other' }), 400, 'ValidationError'],
    ['a path in the filename', JSON.stringify({ ...valid, filename: '../x.wav' }), 400, 'ValidationError'],
  ])('refuses %s before signing anything', async (_name, body, status, type) => {
    const before = await env.keys(env.config.bucket);
    const reply = await invoke(createUpload, apiEvent({ method: 'POST', path: '/files', token, body }));
    expect(reply.status).toBe(status);
    expect(reply.json.error.type).toBe(type);
    expect(reply.json.error.operation).toBe('createUpload');
    expect(reply.json.error.requestId).toBeTruthy();
    expect(reply.json.error).not.toHaveProperty('stack');
    expect(await env.keys(env.config.bucket)).toEqual(before);
  });

  it('answers 401 without a token, with a bad token, an expired one, or one signed with another secret', async () => {
    const expired = await env.token('alice', { expiresIn: '-1m' });
    const foreign = await env.token('alice', { secret: new TextEncoder().encode('x'.repeat(40)) });
    for (const bad of [undefined, 'not-a-jwt', expired, foreign]) {
      const reply = await invoke(createUpload, apiEvent({ method: 'POST', path: '/files', token: bad, body: JSON.stringify(valid) }));
      expect(reply.status).toBe(401);
      expect(reply.json.error.type).toBe('UnauthorizedError');
    }
  });
});

describe('the presigned upload, enforced by MinIO', () => {
  it('accepts exactly the declared bytes', async () => {
    const bytes = wav(2048);
    const reply = await requestUpload(token, valid);
    const sent = await sendUpload(reply.json.upload, bytes);
    expect(sent.status).toBe(204);
    expect(await env.keys(env.config.incomingBucket)).toContain(incomingKey(reply.json.fileId));
  });

  it('refuses more or fewer bytes than declared', async () => {
    const reply = await requestUpload(token, valid);
    for (const size of [2049, 2047]) {
      const sent = await sendUpload(reply.json.upload, wav(size));
      expect(sent.status).toBe(400);
      expect(await sent.text()).toMatch(/EntityToo(Large|Small)/);
    }
    expect(await env.keys(env.config.incomingBucket)).not.toContain(incomingKey(reply.json.fileId));
  });

  it('refuses another key, another content type and a tampered policy', async () => {
    const reply = await requestUpload(token, valid);
    const { upload } = reply.json;
    const otherKey = await sendUpload({ ...upload, fields: { ...upload.fields, key: 'uploads/someone-else' } }, wav(2048));
    expect(otherKey.status).toBe(403);
    const otherType = await sendUpload({ ...upload, fields: { ...upload.fields, 'Content-Type': 'text/html' } }, wav(2048));
    expect(otherType.status).toBe(403);
    const policy = JSON.parse(Buffer.from(upload.fields.Policy, 'base64').toString());
    policy.conditions = policy.conditions.filter((c: unknown) => !(Array.isArray(c) && c[0] === 'content-length-range'));
    const tampered = await sendUpload(
      { ...upload, fields: { ...upload.fields, Policy: Buffer.from(JSON.stringify(policy)).toString('base64') } },
      wav(4096),
    );
    expect(tampered.status).toBe(403);
    const stored = await env.keys(env.config.incomingBucket);
    expect(stored).not.toContain(incomingKey(reply.json.fileId));
    expect(stored).not.toContain('uploads/someone-else');
  });

  it('refuses an expired upload', async () => {
    const reply = await requestUpload(token, valid);
    const policy = JSON.parse(Buffer.from(reply.json.upload.fields.Policy, 'base64').toString());
    expect(Date.parse(policy.expiration) - Date.now()).toBeLessThanOrEqual(env.config.uploadUrlTtlSeconds * 1000 + 1000);
    // MinIO checks the policy's expiration; one in the past is refused even with a valid signature for it.
    const { createPresignedPost } = await import('@aws-sdk/s3-presigned-post');
    const expired = await createPresignedPost(env.ctx.s3.presign, {
      Bucket: env.config.incomingBucket,
      Key: incomingKey(reply.json.fileId),
      Expires: -60,
    });
    const sent = await sendUpload({ method: 'POST', url: expired.url, fields: expired.fields }, wav(2048));
    expect(sent.status).toBe(403);
  });

  it('offers a presigned PUT whose signature covers length and type', async () => {
    const reply = await requestUpload(token, { ...valid, uploadMethod: 'PUT' });
    expect(reply.status).toBe(201);
    const { upload } = reply.json;
    expect(upload.method).toBe('PUT');
    expect(upload.url).not.toContain(' ');
    const wrongLength = await fetch(upload.url, { method: 'PUT', headers: upload.headers, body: wav(2049) });
    expect(wrongLength.status).toBe(403);
    const wrongType = await fetch(upload.url, { method: 'PUT', headers: { ...upload.headers, 'Content-Type': 'text/html' }, body: wav(2048) });
    expect(wrongType.status).toBe(403);
    const ok = await sendUpload(upload, wav(2048));
    expect(ok.status).toBe(200);
  });

  it.each([
    ['', 'POST'],
    ['', 'PUT'],
    ['application/octet-stream', 'POST'],
    ['application/octet-stream', 'PUT'],
  ])('accepts an allowed extension with type "%s" (%s): the magic bytes decide, and the sniffed type is stored', async (contentType, uploadMethod) => {
    const bytes = wav(4096);
    const created = await requestUpload(token, { filename: 'phone.wav', contentType, size: bytes.length, uploadMethod });
    expect(created.status).toBe(201);
    const sent = await sendUpload(created.json.upload, bytes);
    expect(sent.status).toBeLessThan(300);
    await notifyUploaded(env, created.json.fileId);
    const { fileId } = created.json;
    const info = await invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token }));
    expect(info.json).toMatchObject({ status: 'ready', contentType: 'audio/wav' });
  });

  it('rejects a file of generic type whose magic bytes disagree with its extension', async () => {
    const bytes = wav(4096);
    const created = await requestUpload(token, { filename: 'voice memo.m4a', contentType: 'application/octet-stream', size: bytes.length });
    expect(created.status).toBe(201);
    await sendUpload(created.json.upload, bytes);
    await notifyUploaded(env, created.json.fileId);
    const { fileId } = created.json;
    const info = await invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token }));
    expect(info.json).toMatchObject({ status: 'rejected', reason: 'content is wav audio but the file was declared as m4a' });
  });

  it('still refuses a specific type that does not fit the extension, and a generic type on a disallowed extension', async () => {
    expect((await requestUpload(token, { ...valid, contentType: 'video/mp4' })).status).toBe(400);
    expect((await requestUpload(token, { ...valid, filename: 'x.exe', contentType: 'application/octet-stream' })).status).toBe(400);
  });
});
