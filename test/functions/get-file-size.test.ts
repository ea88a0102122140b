import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as getSize } from '../../functions/get-file-size.ts';
import { mp3 } from '../support/audio-fixtures.ts';
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

const size = (fileId: string, as = token) =>
  invoke(getSize, apiEvent({ method: 'GET', path: `/files/${fileId}/size`, fileId, token: as }));

describe('GET /files/{fileId}/size', () => {
  it('returns the plaintext size, not the stored (encrypted) size', async () => {
    const fileId = await uploadRecording(env, token, mp3(150_001), 'mp3');
    const reply = await size(fileId);
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ fileId, size: 150_001 });
  });

  it('answers 409 before the file is ready and 404 for another owner', async () => {
    const created = await requestUpload(token, { filename: 'a.mp3', contentType: 'audio/mpeg', size: 10 });
    expect((await size(created.json.fileId)).status).toBe(409);
    const fileId = await uploadRecording(env, token, mp3(1000), 'mp3');
    expect((await size(fileId, await env.token('bob'))).status).toBe(404);
  });
});
