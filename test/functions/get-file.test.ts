import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as getContent } from '../../functions/get-file.ts';
import { finalKey } from '../../lib/storage/object-layout.ts';
import { sha256, wav } from '../support/audio-fixtures.ts';
import { requestUpload, uploadRecording } from '../support/file-flow.ts';
import { invoke } from '../support/handlers.ts';
import { apiEvent } from '../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../support/minio-environment.ts';

let env: MinioEnvironment;
let token: string;
let bytes: Buffer;
let fileId: string;

beforeAll(async () => {
  env = await prepareMinioEnvironment({ STORAGE_MAX_RESPONSE_BYTES: String(1024 * 1024) });
  token = await env.token('alice');
  bytes = wav(3 * 65536 + 1234);
  fileId = await uploadRecording(env, token, bytes);
});
afterAll(() => env.cleanup());

const read = (id: string, headers: Record<string, string> = {}, as = token) =>
  invoke(getContent, apiEvent({ method: 'GET', path: `/files/${id}/content`, fileId: id, token: as, headers }));

describe('GET /files/{fileId}/content', () => {
  it('returns the whole decrypted file with its headers', async () => {
    const reply = await read(fileId);
    expect(reply.status).toBe(200);
    expect(reply.bytes.equals(bytes)).toBe(true);
    expect(reply.headers['content-type']).toBe('audio/wav');
    expect(reply.headers['accept-ranges']).toBe('bytes');
    expect(reply.headers['content-length']).toBe(String(bytes.length));
    expect(reply.headers.etag).toBe(`"${sha256(bytes)}"`);
  });

  it.each([
    ['bytes=0-99', 0, 99],
    ['bytes=65530-65545', 65530, 65545],
    ['bytes=65536-131071', 65536, 131071],
    ['bytes=100000-', 100000, 3 * 65536 + 1233],
    ['bytes=-500', 3 * 65536 + 1234 - 500, 3 * 65536 + 1233],
    ['bytes=196000-999999999', 196000, 3 * 65536 + 1233],
    ['bytes=42-42', 42, 42],
  ])('answers %s with 206 and exactly that slice', async (range, start, end) => {
    const reply = await read(fileId, { range });
    expect(reply.status).toBe(206);
    expect(reply.headers['content-range']).toBe(`bytes ${start}-${end}/${bytes.length}`);
    expect(reply.bytes.equals(bytes.subarray(start, end + 1))).toBe(true);
  });

  it.each([
    ['bytes=0-99999999999999999999', 0, 3 * 65536 + 1233],
    ['bytes=0-1,5-6', 0, 6],
    ['bytes=999999-,-10', 3 * 65536 + 1234 - 10, 3 * 65536 + 1233],
  ])('answers %s as RFC 9110 asks: a far last position clamped, several ranges as one part', async (range, start, end) => {
    const reply = await read(fileId, { range });
    expect(reply.status).toBe(206);
    expect(reply.headers['content-range']).toBe(`bytes ${start}-${end}/${bytes.length}`);
    expect(reply.bytes.equals(bytes.subarray(start, end + 1))).toBe(true);
  });

  it('ignores a Range of another unit and serves the whole file', async () => {
    const reply = await read(fileId, { range: 'items=0-5' });
    expect(reply.status).toBe(200);
    expect(reply.bytes.equals(bytes)).toBe(true);
  });

  it.each(['bytes=999999-', 'bytes=99999999999999999999-', 'bytes=10-5', 'bytes=-0'])(
    'answers %s with 416 and Content-Range: bytes */size',
    async (range) => {
      const reply = await read(fileId, { range });
      expect(reply.status).toBe(416);
      expect(reply.json.error.type).toBe('RangeNotSatisfiableError');
      expect(reply.headers['content-range']).toBe(`bytes */${bytes.length}`);
    },
  );

  it('refuses a bytes Range that is not a range with 400', async () => {
    const reply = await read(fileId, { range: 'bytes=abc' });
    expect(reply.status).toBe(400);
    expect(reply.json.error.type).toBe('ValidationError');
  });

  it('refuses a whole read larger than one response, and serves an open or oversize range as a bounded 206', async () => {
    const max = 1024 * 1024;
    const big = wav(3 * max + 10);
    const bigId = await uploadRecording(env, token, big);
    const whole = await read(bigId);
    expect(whole.status).toBe(413);
    expect(whole.json.error.type).toBe('StorageFileSizeError');
    expect(whole.json.error.message).toMatch(/Range/);
    // What every media element sends first: the start, at most one response's worth, and the size.
    for (const [range, start] of [['bytes=0-', 0], [`bytes=1000-${2 * max + 5000}`, 1000], [`bytes=${max}-99999999999999999999`, max]] as const) {
      const reply = await read(bigId, { range });
      expect(reply.status).toBe(206);
      expect(reply.headers['content-range']).toBe(`bytes ${start}-${start + max - 1}/${big.length}`);
      expect(reply.headers['content-length']).toBe(String(max));
      expect(reply.bytes.equals(big.subarray(start, start + max))).toBe(true);
    }
    const tail = await read(bigId, { range: 'bytes=3145000-' });
    expect(tail.headers['content-range']).toBe(`bytes 3145000-${big.length - 1}/${big.length}`);
    expect(tail.bytes.equals(big.subarray(3145000))).toBe(true);
    const suffix = await read(bigId, { range: `bytes=-${2 * max}` });
    expect(suffix.headers['content-range']).toBe(`bytes ${big.length - 2 * max}-${big.length - max - 1}/${big.length}`);
  });

  it('answers 409 for a file that is not ready yet', async () => {
    const created = await requestUpload(token, { filename: 'x.wav', contentType: 'audio/wav', size: 100 });
    const reply = await read(created.json.fileId);
    expect(reply.status).toBe(409);
    expect(reply.json.error.type).toBe('StorageFileNotReadyError');
  });

  it('never serves wrong bytes: a flipped ciphertext byte is StorageFileCorruptedError, whole or ranged', async () => {
    const victim = wav(200_000);
    const victimId = await uploadRecording(env, token, victim);
    const key = { Bucket: env.config.bucket, Key: finalKey(victimId) };
    const original = await env.admin.send(new GetObjectCommand(key));
    const cipher = Buffer.from(await original.Body!.transformToByteArray());
    cipher[70_000] = cipher[70_000]! ^ 0x01;
    await env.admin.send(new PutObjectCommand({ ...key, Body: cipher, Metadata: original.Metadata }));

    const whole = await read(victimId);
    expect(whole.status).toBe(500);
    expect(whole.json.error.type).toBe('StorageFileCorruptedError');
    expect(whole.json.error.fileId).toBe(victimId);
    const touched = await read(victimId, { range: 'bytes=65536-65600' });
    expect(touched.json.error.type).toBe('StorageFileCorruptedError');
    const untouched = await read(victimId, { range: 'bytes=0-100' });
    expect(untouched.status).toBe(206);
    expect(untouched.bytes.equals(victim.subarray(0, 101))).toBe(true);
  });

  it('answers 404 for an unknown id and for another owner, 401 without a token', async () => {
    const unknown = await read('7d0b3e9a-1111-4aaa-8bbb-123456789abc');
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.type).toBe('StorageFileNotFoundError');
    const mallory = await read(fileId, {}, await env.token('mallory'));
    expect(mallory.status).toBe(404);
    expect(mallory.json.error.type).toBe('StorageFileNotFoundError');
    const anonymous = await invoke(getContent, apiEvent({ method: 'GET', path: `/files/${fileId}/content`, fileId }));
    expect(anonymous.status).toBe(401);
  });
});
