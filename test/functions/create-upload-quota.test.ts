import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as createUpload } from '../../functions/create-upload.ts';
import { handler as deleteFile } from '../../functions/delete-file.ts';
import { handler as getInfo } from '../../functions/get-file-info.ts';
import { OwnerQuotas } from '../../lib/storage/owner-quotas.ts';
import { wav } from '../support/audio-fixtures.ts';
import { notifyUploaded, requestUpload, uploadRecording } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { sendUpload } from '../support/http-client.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

/**
 * POST /files with per-owner quotas configured (STORAGE_QUOTA_BYTES_PER_OWNER,
 * STORAGE_QUOTA_FILES_PER_OWNER), through the functions as Lambda runs them.
 */

const BYTES = 100_000;
const FILES = 3;
let env: MinioEnvironment;

beforeAll(async () => {
  env = await prepareMinioEnvironment({ STORAGE_QUOTA_BYTES_PER_OWNER: String(BYTES), STORAGE_QUOTA_FILES_PER_OWNER: String(FILES) });
});
afterAll(() => env.cleanup());

const body = (size: number) => ({ filename: 'session.wav', contentType: 'audio/wav', size });
const remove = (fileId: string, token: string) => invoke(deleteFile, apiEvent({ method: 'DELETE', path: `/files/${fileId}`, fileId, token }));
const usageOf = (owner: string) => new OwnerQuotas(env.ctx).usageOf(owner);

describe('POST /files with per-owner quotas', () => {
  it('past the byte limit: 409 StorageQuotaError in the catalogue shape, and nothing is created', async () => {
    const token = await env.token('bytes@example.com');
    expect((await requestUpload(token, body(60_000))).status).toBe(201);
    const before = [...(await env.keys(env.config.bucket)), ...(await env.keys(env.config.incomingBucket))];
    const reply = await requestUpload(token, body(40_001));
    expect(reply.status).toBe(409);
    expect(reply.headers['content-type']).toMatch(/^application\/json/);
    expect(Object.keys(reply.json.error).sort()).toEqual(['message', 'operation', 'requestId', 'timestamp', 'type']);
    expect(reply.json.error).toMatchObject({ type: 'StorageQuotaError', operation: 'createUpload' });
    expect(reply.json.error.message).toContain(String(BYTES));
    expect(reply.json.error.message).not.toContain('bytes@example.com');
    expect([...(await env.keys(env.config.bucket)), ...(await env.keys(env.config.incomingBucket))]).toEqual(before);
    // Exactly up to the limit is fine.
    expect((await requestUpload(token, body(40_000))).status).toBe(201);
  });

  it('past the file limit: 409; a DELETE gives the room back', async () => {
    const token = await env.token('files@example.com');
    const ids: string[] = [];
    for (let i = 0; i < FILES; i++) ids.push((await requestUpload(token, body(10))).json.fileId);
    const refused = await requestUpload(token, body(10));
    expect(refused.status).toBe(409);
    expect(refused.json.error.type).toBe('StorageQuotaError');
    // Another owner is not affected by this one's usage.
    expect((await requestUpload(await env.token('neighbour@example.com'), body(10))).status).toBe(201);
    expect((await remove(ids[0]!, token)).status).toBe(204);
    expect((await requestUpload(token, body(10))).status).toBe(201);
  });

  it('concurrent creates that jointly exceed the limit: as many succeed as fit, and only they are recorded', async () => {
    const owner = 'burst@example.com';
    const token = await env.token(owner);
    const replies = await Promise.all(Array.from({ length: 5 }, () => requestUpload(token, body(40_000))));
    expect(replies.map((r) => r.status).sort()).toEqual([201, 201, 409, 409, 409]);
    expect(await usageOf(owner)).toEqual({ bytes: 80_000, files: 2 });
  });

  it('a ready recording counts with its size; deleting it frees it', async () => {
    const owner = 'ready@example.com';
    const token = await env.token(owner);
    const fileId = await uploadRecording(env, token, wav(90_000));
    expect((await invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token }))).json.status).toBe('ready');
    expect(await usageOf(owner)).toEqual({ bytes: 90_000, files: 1 });
    expect((await requestUpload(token, body(10_001))).status).toBe(409);
    expect((await remove(fileId, token)).status).toBe(204);
    expect(await usageOf(owner)).toEqual({ bytes: 0, files: 0 });
    const created = await requestUpload(token, body(50_000));
    expect(created.status).toBe(201);
    // And the new one goes all the way through.
    expect((await sendUpload(created.json.upload, wav(50_000))).status).toBe(204);
    await notifyUploaded(env, created.json.fileId);
    expect(await usageOf(owner)).toEqual({ bytes: 50_000, files: 1 });
  });
});
