import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as getInfo } from '../../functions/get-file-info.ts';
import { expectErrorBody } from '../support/api-client.ts';
import { requestUpload } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { providerKey, providerToken, startJwksServer, type JwksServer, type ProviderKey } from '../support/jwks-server.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

/**
 * The functions with a real identity provider configured (STORAGE_AUTH_JWKS_URL, issuer,
 * audience), against the real MinIO: its RS256 tokens name the owner, nothing else gets in.
 */

const ISSUER = 'https://id.example.test/';
const AUDIENCE = 'transcribo-storage';
const MISSING = '1b2c3d4e-0000-4000-8000-00000000abcd';

let provider: JwksServer;
let key: ProviderKey;
let env: MinioEnvironment;

beforeAll(async () => {
  key = await providerKey('RS256');
  provider = await startJwksServer([key]);
  env = await prepareMinioEnvironment({
    STORAGE_AUTH_JWKS_URL: provider.url.href,
    STORAGE_AUTH_ISSUER: ISSUER,
    STORAGE_AUTH_AUDIENCE: `web-app, ${AUDIENCE}`,
  });
});
afterAll(async () => {
  await env?.cleanup();
  await provider?.close();
});

const tokenFor = (sub: string, aud = AUDIENCE) => providerToken(key, { claims: { sub, iss: ISSUER, aud } });
const info = async (fileId: string, token: string) => invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token }));

describe('HTTP functions with an identity provider (JWKS)', () => {
  it('lets a good RS256 token reach its own file, and only its own', async () => {
    const alice = await tokenFor('alice');
    const created = await requestUpload(alice, { filename: 'idp.wav', contentType: 'audio/wav', size: 1000 });
    expect(created.status).toBe(201);
    const mine = await info(created.json.fileId, alice);
    expect(mine.status).toBe(200);
    expect(mine.json).toMatchObject({ fileId: created.json.fileId, status: 'awaiting_upload', filename: 'idp.wav' });
    // Authenticated, so the answer is about files: Bob's view of Alice's file is a missing file.
    const bob = await info(created.json.fileId, await tokenFor('bob'));
    expect(bob.status).toBe(404);
    expectErrorBody(bob.json, 'StorageFileNotFoundError');
    expect((await info(MISSING, alice)).status).toBe(404);
  });

  it('answers 401 UnauthorizedError to a token for another audience', async () => {
    const token = await tokenFor('alice', 'another-api');
    const reply = await info(MISSING, token);
    expect(reply.status).toBe(401);
    expectErrorBody(reply.json, 'UnauthorizedError');
    expect(reply.json.error.message).toMatch(/audience/);
    expect(reply.bytes.toString()).not.toContain(token.split('.')[1]);
  });

  it('answers 401 to the development HS256 token while a provider is configured', async () => {
    const reply = await info(MISSING, await env.token('alice'));
    expect(reply.status).toBe(401);
    expectErrorBody(reply.json, 'UnauthorizedError');
  });
});
