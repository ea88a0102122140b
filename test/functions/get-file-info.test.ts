import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as getInfo } from '../../functions/get-file-info.ts';
import { sha256, wav } from '../support/audio-fixtures.ts';
import { requestUpload, uploadRecording } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

let env: MinioEnvironment;
let token: string;

beforeAll(async () => {
  env = await prepareMinioEnvironment();
  token = await env.token('alice');
});
afterAll(() => env.cleanup());

const info = (fileId: string, as = token) => invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token: as }));

describe('GET /files/{fileId}', () => {
  it('describes a file awaiting its upload with what was declared', async () => {
    const created = await requestUpload(token, {
      filename: 'Séance 1.wav',
      contentType: 'audio/wav',
      size: 1000,
      metadata: { meeting: 'weekly' },
    });
    const reply = await info(created.json.fileId);
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({
      fileId: created.json.fileId,
      status: 'awaiting_upload',
      filename: 'Séance 1.wav',
      contentType: 'audio/wav',
      size: 1000,
      sha256: null,
      encrypted: false,
      metadata: { meeting: 'weekly' },
    });
    expect(Date.parse(reply.json.createdAt)).not.toBeNaN();
  });

  it('describes a ready file with its measured size and SHA-256', async () => {
    const bytes = wav(5000);
    const fileId = await uploadRecording(env, token, bytes);
    const reply = await info(fileId);
    expect(reply.json).toMatchObject({ status: 'ready', size: 5000, sha256: sha256(bytes), encrypted: true });
    expect(Date.parse(reply.json.updatedAt)).toBeGreaterThanOrEqual(Date.parse(reply.json.createdAt));
  });

  it('hides files from other owners exactly like missing files', async () => {
    const fileId = await uploadRecording(env, token, wav(500));
    const other = await info(fileId, await env.token('bob'));
    const missing = await info('1b2c3d4e-0000-4000-8000-00000000abcd');
    expect(other.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(other.json.error.type).toBe(missing.json.error.type);
    expect(other.json.error.message).toBe(missing.json.error.message);
  });

  it('answers 400 for an id that is not a UUID, and 401 for a bad token', async () => {
    const reply = await info('..%2Fmanifests');
    expect(reply.status).toBe(400);
    expect(reply.json.error.type).toBe('ValidationError');
    const bad = await info('1b2c3d4e-0000-4000-8000-00000000abcd', 'a.b.c');
    expect(bad.status).toBe(401);
    expect(bad.json.error.type).toBe('UnauthorizedError');
  });
});
