import { AbortMultipartUploadCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as completeUpload } from '../../functions/complete-upload.ts';
import { handler as deleteFile } from '../../functions/delete-file.ts';
import { handler as getContent } from '../../functions/get-file.ts';
import { handler as getInfo } from '../../functions/get-file-info.ts';
import { handler as listParts } from '../../functions/list-parts.ts';
import { handler as presignParts } from '../../functions/presign-parts.ts';
import { handler as signS3Request } from '../../functions/sign-s3-request.ts';
import { incomingKey } from '../../lib/storage/object-layout.ts';
import { sha256, wav } from '../support/audio-fixtures.ts';
import { notifyUploaded, requestUpload } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

const MiB = 1024 * 1024;
let env: MinioEnvironment;
let alice: string;

beforeAll(async () => {
  env = await prepareMinioEnvironment({ STORAGE_MAX_FILE_SIZE: String(64 * MiB), STORAGE_MAX_RESPONSE_BYTES: String(4 * MiB) });
  alice = await env.token('alice');
});
afterAll(() => env.cleanup());

const call = (handler: unknown, method: 'GET' | 'POST' | 'DELETE', path: string, fileId: string, body?: unknown, token = alice) =>
  invoke(handler, apiEvent({ method, path, fileId, token, ...(body !== undefined && { body: JSON.stringify(body) }) }));

async function createMultipart(bytes: Buffer, extra: Record<string, unknown> = {}) {
  const created = await requestUpload(alice, { filename: 'hour.wav', contentType: 'audio/wav', size: bytes.length, uploadMethod: 'MULTIPART', partSize: 5 * MiB, ...extra });
  expect(created.status, JSON.stringify(created.json)).toBe(201);
  return created.json as { fileId: string; upload: { method: string; partSize: number; partCount: number } };
}

const partBytes = (bytes: Buffer, n: number, partSize: number) => bytes.subarray((n - 1) * partSize, n * partSize);

async function readAll(fileId: string, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let at = 0; at < size; ) {
    const part = await invoke(getContent, apiEvent({ method: 'GET', path: `/files/${fileId}/content`, fileId, token: alice, headers: { range: `bytes=${at}-` } }));
    expect(part.status).toBeLessThan(300);
    chunks.push(part.bytes);
    at += part.bytes.length;
  }
  return Buffer.concat(chunks);
}

describe('resumable multipart uploads over the API (what curl and mobile clients do)', () => {
  it('create, sign parts in batches, put them, list, complete: the file ends ready and byte-identical', async () => {
    const bytes = wav(12 * MiB + 12345);
    const { fileId, upload } = await createMultipart(bytes);
    expect(upload).toEqual({ method: 'MULTIPART', partSize: 5 * MiB, partCount: 3 });

    const first = await call(presignParts, 'POST', `/files/${fileId}/parts`, fileId, { partNumbers: [1, 2] });
    expect(first.status).toBe(200);
    expect(first.json.parts.map((p: { partNumber: number; size: number }) => [p.partNumber, p.size])).toEqual([[1, 5 * MiB], [2, 5 * MiB]]);
    for (const part of first.json.parts) {
      const put = await fetch(part.url, { method: 'PUT', body: partBytes(bytes, part.partNumber, 5 * MiB) });
      expect(put.status).toBe(200);
    }
    // A client that lost its state asks what is there, and resumes from it.
    const listed = await call(listParts, 'GET', `/files/${fileId}/parts`, fileId);
    expect(listed.json).toMatchObject({ uploadId: first.json.uploadId, partSize: 5 * MiB, partCount: 3 });
    expect(listed.json.parts.map((p: { partNumber: number; size: number }) => [p.partNumber, p.size])).toEqual([[1, 5 * MiB], [2, 5 * MiB]]);

    const early = await call(completeUpload, 'POST', `/files/${fileId}/complete`, fileId);
    expect(early.status).toBe(400);
    expect(early.json.error.message).toMatch(/part 3 is missing/);

    const last = await call(presignParts, 'POST', `/files/${fileId}/parts`, fileId, { partNumbers: [3] });
    expect(last.json.uploadId).toBe(first.json.uploadId);
    expect(last.json.parts[0].size).toBe(2 * MiB + 12345);
    expect((await fetch(last.json.parts[0].url, { method: 'PUT', body: partBytes(bytes, 3, 5 * MiB) })).status).toBe(200);

    const done = await call(completeUpload, 'POST', `/files/${fileId}/complete`, fileId);
    expect(done.status).toBe(202);
    // Before its event is handled: a retried completion is answered alike, and the list shows every part held.
    expect((await call(completeUpload, 'POST', `/files/${fileId}/complete`, fileId)).status).toBe(202);
    const afterwards = await call(listParts, 'GET', `/files/${fileId}/parts`, fileId);
    expect(afterwards.json).toMatchObject({ completed: true, partCount: 3 });
    expect(afterwards.json.parts.map((p: { partNumber: number }) => p.partNumber)).toEqual([1, 2, 3]);
    await notifyUploaded(env, fileId);
    const info = await call(getInfo, 'GET', `/files/${fileId}`, fileId);
    expect(info.json).toMatchObject({ status: 'ready', size: bytes.length, sha256: sha256(bytes) });
    expect((await readAll(fileId, bytes.length)).equals(bytes)).toBe(true);

    const again = await call(presignParts, 'POST', `/files/${fileId}/parts`, fileId, { partNumbers: [1] });
    expect(again.status).toBe(409);
    expect(again.json.error.type).toBe('UploadNotOpenError');
  });

  it('bounds every part by the declared size: the storage server refuses another length, and no part past the last is signed', async () => {
    const bytes = wav(6 * MiB);
    const { fileId } = await createMultipart(bytes);
    const signed = await call(presignParts, 'POST', `/files/${fileId}/parts`, fileId, { partNumbers: [1, 2] });
    const [one, two] = signed.json.parts;
    expect(two.size).toBe(1 * MiB);
    const tooLong = await fetch(two.url, { method: 'PUT', body: Buffer.alloc(5 * MiB) });
    expect(tooLong.status).toBe(403);
    const tooShort = await fetch(one.url, { method: 'PUT', body: Buffer.alloc(1024) });
    expect(tooShort.status).toBe(403);
    for (const partNumbers of [[3], [0], [1.5], []]) {
      const refused = await call(presignParts, 'POST', `/files/${fileId}/parts`, fileId, { partNumbers });
      expect(refused.status, JSON.stringify(partNumbers)).toBe(400);
      expect(refused.json.error.type).toBe('ValidationError');
    }
    const wrongId = await call(presignParts, 'POST', `/files/${fileId}/parts`, fileId, { partNumbers: [1], uploadId: 'someone-elses' });
    expect(wrongId.status).toBe(400);
  });

  it('is owner-scoped and refuses files not declared as multipart', async () => {
    const bytes = wav(6 * MiB);
    const { fileId } = await createMultipart(bytes);
    const mallory = await env.token('mallory');
    for (const [handler, method, path, body] of [
      [presignParts, 'POST', `/files/${fileId}/parts`, { partNumbers: [1] }],
      [listParts, 'GET', `/files/${fileId}/parts`, undefined],
      [completeUpload, 'POST', `/files/${fileId}/complete`, undefined],
      [signS3Request, 'POST', `/files/${fileId}/s3-requests`, { method: 'POST' }],
    ] as const) {
      const reply = await call(handler, method, path, fileId, body, mallory);
      expect(reply.status, path).toBe(404);
    }
    const single = await requestUpload(alice, { filename: 'a.wav', contentType: 'audio/wav', size: 100, uploadMethod: 'PUT' });
    const refused = await call(presignParts, 'POST', `/files/${single.json.fileId}/parts`, single.json.fileId, { partNumbers: [1] });
    expect(refused.status).toBe(400);
  });

  it('an upload aborted behind the file\'s back is told (409) and replaced by a new one on the next request for parts', async () => {
    const bytes = wav(6 * MiB);
    const { fileId } = await createMultipart(bytes);
    const first = await call(presignParts, 'POST', `/files/${fileId}/parts`, fileId, { partNumbers: [1] });
    await env.admin.send(new AbortMultipartUploadCommand({ Bucket: env.config.incomingBucket, Key: incomingKey(fileId), UploadId: first.json.uploadId }));
    const listed = await call(listParts, 'GET', `/files/${fileId}/parts`, fileId);
    expect(listed.status).toBe(409);
    expect(listed.json.error).toMatchObject({ type: 'UploadNotOpenError', message: expect.stringMatching(/aborted/) });
    const again = await call(presignParts, 'POST', `/files/${fileId}/parts`, fileId, { partNumbers: [1, 2] });
    expect(again.json.uploadId).not.toBe(first.json.uploadId);
    for (const part of again.json.parts) expect((await fetch(part.url, { method: 'PUT', body: partBytes(bytes, part.partNumber, 5 * MiB) })).status).toBe(200);
    expect((await call(completeUpload, 'POST', `/files/${fileId}/complete`, fileId)).status).toBe(202);
    for (const bad of ['.', '..', 'a/../b']) {
      const other = await createMultipart(bytes);
      const reply = await call(presignParts, 'POST', `/files/${other.fileId}/parts`, other.fileId, { partNumbers: [1], uploadId: bad });
      expect(reply.status, bad).toBe(400);
    }
  });

  it('a delete aborts the resumable upload with the file', async () => {
    const bytes = wav(6 * MiB);
    const { fileId } = await createMultipart(bytes);
    const signed = await call(presignParts, 'POST', `/files/${fileId}/parts`, fileId, { partNumbers: [1] });
    await fetch(signed.json.parts[0].url, { method: 'PUT', body: partBytes(bytes, 1, 5 * MiB) });
    const open = async () =>
      ((await env.admin.send(new ListMultipartUploadsCommand({ Bucket: env.config.incomingBucket }))).Uploads ?? []).filter((u) => u.Key === incomingKey(fileId));
    expect(await open()).toHaveLength(1);
    expect((await call(deleteFile, 'DELETE', `/files/${fileId}`, fileId)).status).toBe(204);
    expect(await open()).toHaveLength(0);
  });
});

describe('signing S3 requests for clients that speak S3 themselves (Uppy 6 signRequest)', () => {
  const sign = (fileId: string, request: Record<string, unknown>) => call(signS3Request, 'POST', `/files/${fileId}/s3-requests`, fileId, request);

  it('create, parts, list, complete, each sent by the client to the storage server: ready and byte-identical', async () => {
    const bytes = wav(11 * MiB);
    const { fileId } = await createMultipart(bytes);
    // An upload id the storage server does not know on this key is never bound.
    const unknown = await sign(fileId, { method: 'PUT', uploadId: 'not-an-upload', partNumber: 1 });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error.message).toMatch(/not an upload of this file/);
    const create = await sign(fileId, { method: 'POST', key: incomingKey(fileId) });
    expect(create.status).toBe(200);
    const created = await fetch(create.json.url, { method: 'POST', headers: create.json.headers });
    expect(created.status).toBe(200);
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())![1]!;

    const etags: string[] = [];
    for (const partNumber of [1, 2, 3]) {
      const signed = await sign(fileId, { method: 'PUT', uploadId, partNumber });
      expect(signed.status).toBe(200);
      const put = await fetch(signed.json.url, { method: 'PUT', body: partBytes(bytes, partNumber, 5 * MiB) });
      expect(put.status).toBe(200);
      etags.push(put.headers.get('etag')!);
    }
    const again = await sign(fileId, { method: 'POST' });
    expect(again.status).toBe(400);
    expect(again.json.error.message).toMatch(/already has a multipart upload/);
    const foreign = await sign(fileId, { method: 'PUT', uploadId: 'another', partNumber: 1 });
    expect(foreign.status).toBe(400);

    const list = await sign(fileId, { method: 'GET', uploadId });
    const listed = await (await fetch(list.json.url)).text();
    expect(listed.match(/<PartNumber>/g)).toHaveLength(3);

    const complete = await sign(fileId, { method: 'POST', uploadId });
    const xml = `<CompleteMultipartUpload>${etags.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${etag}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
    const completed = await fetch(complete.json.url, { method: 'POST', headers: complete.json.headers, body: xml });
    expect(completed.status, await completed.clone().text()).toBe(200);
    await notifyUploaded(env, fileId);
    const info = await call(getInfo, 'GET', `/files/${fileId}`, fileId);
    expect(info.json).toMatchObject({ status: 'ready', sha256: sha256(bytes) });
  });

  it('signs a single PUT for a file declared for one, bound to its size', async () => {
    const bytes = wav(300_000);
    const created = await requestUpload(alice, { filename: 'short.wav', contentType: 'audio/wav', size: bytes.length, uploadMethod: 'PUT' });
    const { fileId } = created.json;
    const signed = await sign(fileId, { method: 'PUT', key: incomingKey(fileId), contentType: 'audio/wav' });
    expect(signed.status).toBe(200);
    expect((await fetch(signed.json.url, { method: 'PUT', headers: signed.json.headers, body: wav(300_001) })).status).toBe(403);
    expect((await fetch(signed.json.url, { method: 'PUT', headers: signed.json.headers, body: bytes })).status).toBe(200);
    expect((await sign(fileId, { method: 'POST' })).status).toBe(400);
    expect((await sign(fileId, { method: 'PATCH' })).status).toBe(400);
    const elsewhere = await sign(fileId, { method: 'PUT', key: `uploads/${fileId}-short.wav` });
    expect(elsewhere.status).toBe(400);
    expect(elsewhere.json.error.message).toMatch(/nowhere else/);
  });
});
