import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as createLink } from '../../functions/create-playback-link.ts';
import { handler as getContent } from '../../functions/get-file.ts';
import { wav } from '../support/audio-fixtures.ts';
import { uploadRecording } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

/**
 * Behind API Gateway's custom domain with a base path (api.example.com/storage → the API), the
 * request's Host is the gateway's own: a link built on it would not reach the API. With
 * STORAGE_PUBLIC_API_URL set, links are built on it.
 */

let env: MinioEnvironment;
let alice: string;
let fileId: string;
const bytes = wav(200_000);

beforeAll(async () => {
  env = await prepareMinioEnvironment({ STORAGE_PUBLIC_API_URL: 'https://api.example.com/storage/' });
  alice = await env.token('alice');
  fileId = await uploadRecording(env, alice, bytes);
});
afterAll(() => env.cleanup());

describe('playback links with STORAGE_PUBLIC_API_URL', () => {
  it('are built on the public API URL, base path included, and open the file when the base path is stripped', async () => {
    const reply = await invoke(createLink, apiEvent({ method: 'POST', path: `/files/${fileId}/links`, fileId, token: alice }));
    expect(reply.status).toBe(201);
    const url = new URL(reply.json.url);
    expect(`${url.origin}${url.pathname}`).toBe(`https://api.example.com/storage/files/${fileId}/content`);
    // What the custom domain forwards: the path under the base path, the query as it is.
    const forwarded = url.pathname.replace(/^\/storage/, '');
    const read = await invoke(getContent, apiEvent({ method: 'GET', path: `${forwarded}${url.search}`, fileId, headers: { range: 'bytes=0-99' } }));
    expect(read.status).toBe(206);
    expect(read.bytes.equals(bytes.subarray(0, 100))).toBe(true);
  });
});
