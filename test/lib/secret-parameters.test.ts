import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as getContent } from '../../functions/get-file.ts';
import { handler as getInfo } from '../../functions/get-file-info.ts';
import { wav } from '../support/audio-fixtures.ts';
import { uploadRecording } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { newKek, prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

/**
 * Deployed, the functions hold no secret in their environment: they read the JWT secret and the
 * keys from Parameter Store through Powertools, cached and read again when the cache expires.
 * AWS is not reachable here, so a local endpoint speaks Parameter Store's JSON protocol
 * (`AmazonSSM.GetParameter`) to the real SDK client, through `AWS_ENDPOINT_URL_SSM`; the
 * recordings go through the real handlers and MinIO.
 */

const JWT_PARAMETER = '/transcribo-storage/test/jwt-secret';
const KEYS_PARAMETER = '/transcribo-storage/test/encryption-keys';
const store = new Map<string, string>();
const calls: Array<{ name: string; decrypt: boolean }> = [];
let failing = false;
let server: Server;
let env: MinioEnvironment;
let jwtSecret: string;

function parameterStore(): Promise<Server> {
  const s = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const reply = (status: number, payload: unknown) =>
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify(payload));
      if (req.headers['x-amz-target'] !== 'AmazonSSM.GetParameter') return reply(400, { __type: 'InvalidAction', message: 'only GetParameter' });
      if (failing) return reply(500, { __type: 'InternalServerError', message: 'down' });
      const { Name, WithDecryption } = JSON.parse(body) as { Name: string; WithDecryption?: boolean };
      calls.push({ name: Name, decrypt: WithDecryption === true });
      const value = store.get(Name);
      if (value === undefined) return reply(400, { __type: 'ParameterNotFound', message: `${Name} not found` });
      reply(200, { Parameter: { Name, Type: 'SecureString', Value: value, Version: 1 } });
    });
  });
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)));
}

const token = (sub: string, secret = jwtSecret) => env.token(sub, { secret: new TextEncoder().encode(secret) });
const info = async (fileId: string, as: string) => invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${fileId}`, fileId, token: as }));
const content = async (fileId: string, as: string) =>
  invoke(getContent, apiEvent({ method: 'GET', path: `/files/${fileId}/content`, fileId, token: as, headers: { range: 'bytes=0-99999' } }));
const waitOutCache = () => new Promise((resolve) => setTimeout(resolve, 1_100));

beforeAll(async () => {
  server = await parameterStore();
  const { port } = server.address() as { port: number };
  jwtSecret = randomBytes(32).toString('hex');
  store.set(JWT_PARAMETER, jwtSecret);
  store.set(KEYS_PARAMETER, `p1:${newKek()}`);
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_SSM: `http://127.0.0.1:${port}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    POWERTOOLS_PARAMETERS_MAX_AGE: '1',
  });
  // As the template configures a function: names of parameters, no secret.
  env = await prepareMinioEnvironment({
    STORAGE_AUTH_JWT_SECRET: '',
    STORAGE_ENCRYPTION_KEYS: '',
    STORAGE_AUTH_JWT_SECRET_PARAMETER: JWT_PARAMETER,
    STORAGE_ENCRYPTION_KEYS_PARAMETER: KEYS_PARAMETER,
  });
});
afterAll(async () => {
  await env.cleanup();
  await new Promise((resolve) => server.close(resolve));
});

describe('secrets from Parameter Store', () => {
  let fileId: string;
  let bytes: Buffer;

  it('stores and serves a recording with the secret and keys read at run time, decrypted, and never from the environment', async () => {
    expect(process.env.STORAGE_AUTH_JWT_SECRET).toBe('');
    expect(process.env.STORAGE_ENCRYPTION_KEYS).toBe('');
    bytes = wav(300_000);
    fileId = await uploadRecording(env, await token('alice'), bytes);
    const reply = await content(fileId, await token('alice'));
    expect(reply.status).toBe(206);
    expect(reply.bytes.equals(bytes.subarray(0, 100_000))).toBe(true);
    expect(new Set(calls.map((c) => c.name))).toEqual(new Set([JWT_PARAMETER, KEYS_PARAMETER]));
    expect(calls.every((c) => c.decrypt)).toBe(true);
  });

  it('has a function read only the secrets it needs, and keeps them for POWERTOOLS_PARAMETERS_MAX_AGE', async () => {
    await waitOutCache();
    calls.length = 0;
    const as = await token('alice');
    expect((await info(fileId, as)).status).toBe(200);
    expect((await info(fileId, as)).status).toBe(200);
    // get-file-info verifies its caller and opens a sealed manifest: it asks for the JWT secret and
    // the keys, each once within the cache's life.
    expect(calls.map((c) => c.name).sort()).toEqual([JWT_PARAMETER, KEYS_PARAMETER].sort());
  });

  it('picks up a rotated JWT secret once the cache expires, without a restart', async () => {
    const before = await token('alice');
    jwtSecret = randomBytes(32).toString('hex');
    store.set(JWT_PARAMETER, jwtSecret);
    await waitOutCache();
    expect((await info(fileId, before)).status).toBe(401);
    expect((await info(fileId, await token('alice'))).status).toBe(200);
  });

  it('answers 503 while Parameter Store cannot be reached, and 500 when the parameter is gone, with no secret or backend text', async () => {
    await waitOutCache();
    failing = true;
    const unreachable = await info(fileId, await token('alice'));
    failing = false;
    expect(unreachable.status).toBe(503);
    expect(unreachable.json.error.type).toBe('StorageConnectionError');
    await waitOutCache();
    store.delete(JWT_PARAMETER);
    const missing = await info(fileId, await token('alice'));
    store.set(JWT_PARAMETER, jwtSecret);
    expect(missing.status).toBe(500);
    expect(missing.json.error.type).toBe('StorageOperationError');
    expect(missing.json.error.message).not.toMatch(/STORAGE_|parameter/i);
    for (const reply of [unreachable, missing]) {
      expect(JSON.stringify(reply.json)).not.toContain(jwtSecret);
      expect(JSON.stringify(reply.json)).not.toMatch(/down|not found|transcribo-storage\/test/);
    }
  }, 30_000);
});
