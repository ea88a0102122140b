import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { m4a, mp3, sha256, wav } from '../support/audio-fixtures.ts';
import { ApiClient, expectErrorBody } from '../support/api-client.ts';
import { sendUpload } from '../support/http-client.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';
import { startProduct, type RunningProduct } from '../support/running-product.ts';

/**
 * One file, one running product: MinIO's TRANSCRIBO webhook target can feed one `npm start`
 * at a time, so the HTTP journeys share it (the browser's run on a stack of their own:
 * test/e2e/browser.test.ts).
 *
 * The product as a client meets it: `npm start` (serverless-offline) on a real MinIO whose
 * webhook target TRANSCRIBO delivers object-created events to it; plain fetch for every call
 * and for the presigned upload.
 */

let env: MinioEnvironment;
let product: RunningProduct;
let alice: ApiClient;
let bob: ApiClient;

const productEnv = () => ({ ...env.env, STORAGE_MAX_FILE_SIZE: String(2 * 1024 * 1024), STORAGE_MAX_RESPONSE_BYTES: String(1024 * 1024) });

beforeAll(async () => {
  if (!process.env.TRANSCRIBO_EVENTS_PORT) throw new Error('run through `npm test`: its MinIO has the TRANSCRIBO webhook target');
  env = await prepareMinioEnvironment();
  product = await startProduct(productEnv());
  alice = new ApiClient(product.api, await env.token('alice'));
  bob = new ApiClient(product.api, await env.token('bob'));
}, 120_000);
afterAll(async () => {
  await product?.stop();
  await env?.cleanup();
});

describe('over HTTP against npm start on MinIO', { timeout: 60_000 }, () => {
  it('create → upload with fetch → ready → content → range → delete → 404', async () => {
    const bytes = wav(300_000);
    const created = await alice.create({ filename: 'standup.wav', contentType: 'audio/wav', size: bytes.length, sha256: sha256(bytes) });
    expect(created.upload.url.startsWith(`http://127.0.0.1:${env.env.STORAGE_PORT}/`)).toBe(true);
    expect((await sendUpload(created.upload, bytes)).status).toBe(204);

    const info = await alice.settled(created.fileId);
    expect(info).toMatchObject({ status: 'ready', size: bytes.length, sha256: sha256(bytes), encrypted: true });

    const whole = await alice.request('GET', `/files/${created.fileId}/content`);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-type')).toBe('audio/wav');
    expect(Buffer.from(await whole.arrayBuffer()).equals(bytes)).toBe(true);

    const range = await alice.request('GET', `/files/${created.fileId}/content`, { headers: { range: 'bytes=70000-140000' } });
    expect(range.status).toBe(206);
    expect(range.headers.get('content-range')).toBe(`bytes 70000-140000/${bytes.length}`);
    expect(Buffer.from(await range.arrayBuffer()).equals(bytes.subarray(70000, 140001))).toBe(true);

    const size = await alice.request('GET', `/files/${created.fileId}/size`);
    expect(await size.json()).toEqual({ fileId: created.fileId, size: bytes.length });

    expect((await alice.request('DELETE', `/files/${created.fileId}`)).status).toBe(204);
    for (const path of ['', '/size', '/content']) {
      const after = await alice.request('GET', `/files/${created.fileId}${path}`);
      expect(after.status).toBe(404);
      expectErrorBody(await after.json(), 'StorageFileNotFoundError');
    }
  });

  it('works with the presigned PUT variant and other formats', async () => {
    for (const [bytes, filename, contentType] of [
      [mp3(50_000), 'a.mp3', 'audio/mpeg'],
      [m4a(60_000), 'b.m4a', 'audio/mp4'],
    ] as const) {
      const created = await alice.create({ filename, contentType, size: bytes.length, uploadMethod: 'PUT' });
      expect((await sendUpload(created.upload, bytes)).status).toBe(200);
      expect((await alice.settled(created.fileId)).status).toBe('ready');
    }
  });

  it.each([
    ['oversize', { filename: 'a.wav', contentType: 'audio/wav', size: 3 * 1024 * 1024 }, 413, 'StorageFileSizeError'],
    ['wrong extension', { filename: 'a.exe', contentType: 'audio/wav', size: 10 }, 400, 'ValidationError'],
    ['content type that does not fit', { filename: 'a.wav', contentType: 'video/mp4', size: 10 }, 400, 'ValidationError'],
  ])('refuses %s with the documented status and type', async (_name, body, status, type) => {
    const response = await alice.request('POST', '/files', { body: JSON.stringify(body) });
    expect(response.status).toBe(status);
    expectErrorBody(await response.json(), type);
  });

  it('refuses malformed JSON with 400 ValidationError', async () => {
    const response = await alice.request('POST', '/files', { body: '{"filename": "a.wav",' });
    expect(response.status).toBe(400);
    expectErrorBody(await response.json(), 'ValidationError');
  });

  it('ends an upload with wrong magic bytes as rejected, with a reason', async () => {
    const bytes = mp3(20_000);
    const created = await alice.create({ filename: 'fake.wav', contentType: 'audio/wav', size: bytes.length });
    await sendUpload(created.upload, bytes);
    const info = await alice.settled(created.fileId);
    expect(info.status).toBe('rejected');
    expect(info.reason).toMatch(/mp3/);
    const content = await alice.request('GET', `/files/${created.fileId}/content`);
    expect(content.status).toBe(409);
    expectErrorBody(await content.json(), 'StorageFileNotReadyError');
  });

  it('answers 404 for an unknown id, 401 without a token, 404 for another owner', async () => {
    const unknown = await alice.request('GET', '/files/3f8b2c1a-1234-4abc-8def-0123456789ab');
    expect(unknown.status).toBe(404);
    expectErrorBody(await unknown.json(), 'StorageFileNotFoundError');

    const anonymous = await alice.as(undefined).request('POST', '/files', { body: '{}' });
    expect(anonymous.status).toBe(401);
    expectErrorBody(await anonymous.json(), 'UnauthorizedError');

    const forged = await alice.as(`${(await env.token('alice')).slice(0, -4)}AAAA`).request('GET', '/files/3f8b2c1a-1234-4abc-8def-0123456789ab');
    expect(forged.status).toBe(401);

    const bytes = wav(1000);
    const created = await alice.create({ filename: 'mine.wav', contentType: 'audio/wav', size: bytes.length });
    await sendUpload(created.upload, bytes);
    await alice.settled(created.fileId);
    for (const [method, path] of [['GET', ''], ['GET', '/size'], ['GET', '/content'], ['DELETE', '']] as const) {
      const response = await bob.request(method, `/files/${created.fileId}${path}`);
      expect(response.status).toBe(404);
      expectErrorBody(await response.json(), 'StorageFileNotFoundError');
    }
    expect((await alice.info(created.fileId)).status).toBe('ready');
  });

  it('answers a browser preflight for the API', async () => {
    const preflight = await fetch(`${product.api}/files`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.headers.get('access-control-allow-origin')).toBeTruthy();
  });

  it('processes uploads made while the functions were down once they are back (MinIO queues the events)', async () => {
    const bytes = wav(50_000 + randomBytes(1)[0]!);
    const created = await alice.create({ filename: 'offline.wav', contentType: 'audio/wav', size: bytes.length });
    await product.stop();
    expect((await sendUpload(created.upload, bytes)).status).toBe(204);
    expect((await env.service.getFileInfo('alice', created.fileId)).status).toBe('awaiting_upload');
    product = await startProduct(productEnv());
    alice = new ApiClient(product.api, alice.token);
    const info = await alice.settled(created.fileId, 45_000);
    expect(info.status).toBe('ready');
    const content = await alice.request('GET', `/files/${created.fileId}/content`);
    expect(Buffer.from(await content.arrayBuffer()).equals(bytes)).toBe(true);
  }, 120_000);
});
