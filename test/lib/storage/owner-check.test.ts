import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wav } from '../../support/audio-fixtures.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * A file is its owner's alone, and the owner is the token's `sub` exactly as the identity
 * provider wrote it: identity providers treat subjects as opaque, case-sensitive strings, so
 * `Alice` is not `alice`, nor is `alice ` or a composed/decomposed spelling of one name. Every
 * near-miss answers as a missing file (404), the same as a stranger, and changes nothing.
 */

let env: MinioEnvironment;
let fileId: string;
const bytes = wav(100_000);
const OWNER = 'alice';
const NEAR_MISSES = ['Alice', 'ALICE', 'alice ', ' alice', 'alicе' /* Cyrillic е */, 'alice\u0000', 'ali'];

beforeAll(async () => {
  env = await prepareMinioEnvironment();
  fileId = (await env.service.storeFile(OWNER, bytes, { filename: 'a.wav', contentType: 'audio/wav', size: bytes.length })).fileId;
});
afterAll(() => env?.cleanup());

describe('the owner check', () => {
  it.each(NEAR_MISSES)('a caller whose subject is %j cannot read, size or delete it', async (caller) => {
    const notFound = { name: 'StorageFileNotFoundError' };
    await expect(env.service.getFileInfo(caller, fileId)).rejects.toMatchObject(notFound);
    await expect(env.service.getFileSize(caller, fileId)).rejects.toMatchObject(notFound);
    await expect(env.service.getFile(caller, fileId)).rejects.toMatchObject(notFound);
    await expect(env.service.getFile(caller, fileId, { range: { start: 0, end: 99 } })).rejects.toMatchObject(notFound);
    // The library answers whether something was deleted: nothing, for anyone but the owner (the HTTP function makes it a 404).
    expect(await env.service.deleteFile(caller, fileId)).toBe(false);
    expect(await env.service.deleteFile(caller, fileId, { purge: true })).toBe(false);
    await expect(env.service.restoreFile(caller, fileId)).rejects.toMatchObject(notFound);
  });

  it('the owner still has the file, whole, after every near miss', async () => {
    expect(await env.service.getFileInfo(OWNER, fileId)).toMatchObject({ fileId, status: 'ready' });
    expect((await buffer((await env.service.getFile(OWNER, fileId)).stream)).equals(bytes)).toBe(true);
  });
});
