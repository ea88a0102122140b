import { execFile } from 'node:child_process';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { buffer } from 'node:stream/consumers';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config.ts';
import { rotateKeys } from '../../../lib/service/key-rotation.ts';
import { finalKey, manifestKey } from '../../../lib/storage/object-layout.ts';
import { ownerTag } from '../../../lib/storage/owner-tags.ts';
import { createStorageContext } from '../../../lib/storage/storage-context.ts';
import { StorageService } from '../../../lib/service/storage-service.ts';
import { wav } from '../../support/audio-fixtures.ts';
import { startFaultProxy } from '../../support/fault-proxy.ts';
import { sendUpload } from '../../support/http-client.ts';
import { newKek, prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';
import { processFile } from '../../../lib/processing/process-upload.ts';

/**
 * Rotation as an operator does it, on real MinIO: files stored under k1 (recordings stored by
 * the library and through uploads, one from a time when encryption was off), then k2 made
 * active and `npm run rotate-keys` run, then k1 removed: every file still reads, byte for byte.
 */

let env: MinioEnvironment;
const k1 = `k1:${newKek()}`;
const k2 = `k2:${newKek()}`;
const k3 = `k3:${newKek()}`;
const files: Array<{ fileId: string; bytes: Buffer }> = [];
const serviceWith = (settings: Record<string, string>) => new StorageService(createStorageContext(parseConfig({ ...env.env, ...settings })));

async function readAll(service: StorageService, fileId: string): Promise<Buffer> {
  return buffer((await service.getFile('rita', fileId)).stream);
}

beforeAll(async () => {
  env = await prepareMinioEnvironment({ STORAGE_ENCRYPTION_KEYS: k1 });
  for (const size of [70_000, 3 * 1024 * 1024]) {
    const bytes = wav(size);
    const info = await env.service.storeFile('rita', bytes, { filename: 'session.wav', contentType: 'audio/wav', size: bytes.length, metadata: { patient: 'Jane Roe' } });
    files.push({ fileId: info.fileId, bytes });
  }
  const uploaded = wav(200_000);
  const created = await env.service.createUpload('rita', { filename: 'u.wav', contentType: 'audio/wav', size: uploaded.length });
  expect((await sendUpload(created.upload, uploaded)).status).toBe(204);
  expect(await processFile(env.ctx, created.fileId, 'event')).toMatchObject({ outcome: 'ready' });
  files.push({ fileId: created.fileId, bytes: uploaded });
  // Stored while encryption was off: a clear manifest (version 1) and a clear object.
  const clearBytes = wav(50_000);
  const clear = await serviceWith({ STORAGE_ENCRYPTION_ENABLED: 'false', STORAGE_ENCRYPTION_KEYS: '' }).storeFile('rita', clearBytes, {
    filename: 'old.wav',
    contentType: 'audio/wav',
    size: clearBytes.length,
  });
  files.push({ fileId: clear.fileId, bytes: clearBytes });
}, 120_000);
afterAll(() => env?.cleanup());

describe('npm run rotate-keys', () => {
  it('re-wraps every key under the new active key, after which the old key can go and every file still reads', async () => {
    const tagBefore = await ownerTag(env.ctx, 'rita');
    const clear = files[3]!;
    // Once encryption is on, a clear manifest is refused rather than trusted, until rotation seals it.
    await expect(env.service.getFileInfo('rita', clear.fileId)).rejects.toMatchObject({ name: 'StorageMetadataError' });

    const rotating = createStorageContext(parseConfig({ ...env.env, STORAGE_ENCRYPTION_KEYS: `${k1},${k2}` }));
    const report = await rotateKeys(rotating);
    expect(report).toMatchObject({ files: 4, objectsRewrapped: 3, manifestsResealed: 4, ownerTagKeyRewrapped: true, left: [] });

    // Safe to run twice: a rotated bucket gives nothing to do.
    expect(await rotateKeys(rotating)).toMatchObject({ files: 4, objectsRewrapped: 0, manifestsResealed: 0, ownerTagKeyRewrapped: false, left: [] });

    const onlyK2 = serviceWith({ STORAGE_ENCRYPTION_KEYS: k2 });
    for (const { fileId, bytes } of files) {
      expect((await readAll(onlyK2, fileId)).equals(bytes)).toBe(true);
      const ranged = await onlyK2.getFile('rita', fileId, { range: { start: 1000, end: 40_999 } });
      expect((await buffer(ranged.stream)).equals(bytes.subarray(1000, 41_000))).toBe(true);
      expect(await onlyK2.getFileInfo('rita', fileId)).toMatchObject({ fileId, status: 'ready', size: bytes.length });
      const head = await env.admin.send(new HeadObjectCommand({ Bucket: env.config.bucket, Key: finalKey(fileId) }));
      if (fileId !== clear.fileId) expect(head.Metadata?.['enc-kek']).toBe('k2');
      expect(JSON.parse(await (await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: manifestKey(fileId) }))).Body!.transformToString()).sealed.kek).toBe('k2');
    }
    // The key that was removed no longer opens anything: the rotation really moved the keys.
    await expect(readAll(env.service, files[0]!.fileId)).rejects.toMatchObject({ name: 'StorageMetadataError' });
    // Owner tags name the same owner after rotation: per-owner records stay found.
    expect(await ownerTag(createStorageContext(parseConfig({ ...env.env, STORAGE_ENCRYPTION_KEYS: k2 })), 'rita')).toBe(tagBefore);
  });

  it('a run cut off between a recording and its manifest leaves the file readable, and the next run finishes it', async () => {
    const proxy = await startFaultProxy({ host: env.env.STORAGE_ENDPOINT!, port: Number(env.env.STORAGE_PORT) });
    try {
      const target = files[1]!.fileId;
      // Every write of this file's manifest fails, as if the run died right after its object was re-wrapped.
      proxy.fail((req) => req.method === 'PUT' && (req.url ?? '').includes(`manifests/${target}.json`));
      const cut = createStorageContext(parseConfig({ ...env.env, STORAGE_ENDPOINT: proxy.host, STORAGE_PORT: String(proxy.port), STORAGE_ENCRYPTION_KEYS: `${k2},${k3}` }));
      const first = await rotateKeys(cut);
      expect(first.left.map((l) => l.fileId)).toEqual([target]);
      const both = serviceWith({ STORAGE_ENCRYPTION_KEYS: `${k2},${k3}` });
      expect((await readAll(both, target)).equals(files[1]!.bytes)).toBe(true);

      const rest = await rotateKeys(createStorageContext(parseConfig({ ...env.env, STORAGE_ENCRYPTION_KEYS: `${k2},${k3}` })));
      expect(rest).toMatchObject({ objectsRewrapped: 0, manifestsResealed: 1, left: [] });
      const onlyK3 = serviceWith({ STORAGE_ENCRYPTION_KEYS: k3 });
      for (const { fileId, bytes } of files) expect((await readAll(onlyK3, fileId)).equals(bytes)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('runs as `npm run rotate-keys` with the shell configuration and says what it did', async () => {
    const k4 = `k4:${newKek()}`;
    const rotate = () =>
      promisify(execFile)(process.execPath, ['scripts/rotate-keys.ts'], { env: { ...process.env, ...env.env, STORAGE_ENCRYPTION_KEYS: `${k3},${k4}` } });
    const run = await rotate();
    expect(run.stdout).toMatch(/to key "k4" \(keys known: k3, k4\)/);
    expect(run.stdout).toMatch(/4 files: 3 recordings re-wrapped, 4 manifests sealed anew, owner-tag key re-wrapped; 0 left for another run/);
    expect((await rotate()).stdout).toMatch(/4 files: 0 recordings re-wrapped, 0 manifests sealed anew; 0 left for another run/);
    for (const { fileId, bytes } of files) expect((await readAll(serviceWith({ STORAGE_ENCRYPTION_KEYS: k4 }), fileId)).equals(bytes)).toBe(true);
  });
});
