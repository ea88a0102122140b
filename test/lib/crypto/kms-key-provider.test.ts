import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { KMSClient } from '@aws-sdk/client-kms';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config.ts';
import { kmsKeyProvider } from '../../../lib/crypto/kms-key-provider.ts';
import { rotateKeys } from '../../../lib/service/key-rotation.ts';
import { finalKey, manifestKey } from '../../../lib/storage/object-layout.ts';
import { createStorageContext } from '../../../lib/storage/storage-context.ts';
import { StorageService } from '../../../lib/service/storage-service.ts';
import { wav } from '../../support/audio-fixtures.ts';
import { startLocalKms, type LocalKms } from '../../support/local-kms.ts';
import { newKek, prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * The KMS key provider against a KMS emulator (local-kms; AWS is out of reach here) and real
 * MinIO: a deployment that moves from static keys to a KMS key, as an operator would do it.
 */

let kms: LocalKms;
let env: MinioEnvironment;
const k1 = `k1:${newKek()}`;
const saved = { ...process.env };

beforeAll(async () => {
  kms = await startLocalKms();
  // The SDK's own configuration, as a deployed function gets it (there from its role and region).
  Object.assign(process.env, { AWS_ENDPOINT_URL_KMS: kms.endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
  env = await prepareMinioEnvironment({ STORAGE_ENCRYPTION_KEYS: k1 });
}, 600_000);
afterAll(async () => {
  await env?.cleanup();
  await kms?.stop();
  for (const name of ['AWS_ENDPOINT_URL_KMS', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

const service = (settings: Record<string, string>) => new StorageService(createStorageContext(parseConfig({ ...env.env, ...settings })));
const readAll = async (s: StorageService, fileId: string) => buffer((await s.getFile('kim', fileId)).stream);

describe('KMS key-encryption key', () => {
  it('generates data keys in KMS and opens them again; a blob altered or made for another purpose does not open', async () => {
    const provider = kmsKeyProvider(kms.keyArn);
    const { dataKey, wrappedKey } = await provider.generateDataKey();
    expect(dataKey).toHaveLength(32);
    expect(wrappedKey.length).toBeGreaterThan(32);
    expect(wrappedKey.includes(dataKey)).toBe(false);
    // A fresh provider (another container) has nothing cached: this is KMS's Decrypt.
    expect((await kmsKeyProvider(kms.keyArn).unwrap(wrappedKey)).equals(dataKey)).toBe(true);
    const altered = Buffer.from(wrappedKey);
    altered[altered.length - 5]! ^= 1;
    await expect(kmsKeyProvider(kms.keyArn).unwrap(altered, 'f')).rejects.toMatchObject({ name: 'StorageFileCorruptedError' });
    const wrapped = await provider.wrap(dataKey);
    expect((await kmsKeyProvider(kms.keyArn).unwrap(wrapped)).equals(dataKey)).toBe(true);
    // KMS unreachable: the catalogue's operation error, not a raw SDK error.
    const nowhere = kmsKeyProvider(kms.keyArn, new KMSClient({ endpoint: 'http://127.0.0.1:9', maxAttempts: 1 }));
    await expect(nowhere.unwrap(Buffer.from(wrappedKey).reverse())).rejects.toMatchObject({ name: 'StorageOperationError' });
  });

  it('moves a deployment from static keys to KMS: new files under KMS, old ones re-wrapped by rotate-keys, then the static key removed', async () => {
    const old = wav(3 * 65536 + 11);
    const before = await env.service.storeFile('kim', old, { filename: 'a.wav', contentType: 'audio/wav', size: old.length });

    const withKms = { STORAGE_ENCRYPTION_KEYS: k1, STORAGE_ENCRYPTION_KMS_KEY_ID: kms.keyArn };
    const fresh = wav(200_000);
    const after = await service(withKms).storeFile('kim', fresh, { filename: 'b.wav', contentType: 'audio/wav', size: fresh.length });
    const head = await env.admin.send(new HeadObjectCommand({ Bucket: env.config.bucket, Key: finalKey(after.fileId) }));
    expect(head.Metadata?.['enc-kek']).toBe('kms');
    expect((await readAll(service(withKms), before.fileId)).equals(old)).toBe(true);

    const report = await rotateKeys(createStorageContext(parseConfig({ ...env.env, ...withKms })));
    expect(report).toMatchObject({ files: 2, objectsRewrapped: 1, manifestsResealed: 1, left: [] });

    const kmsOnly = service({ STORAGE_ENCRYPTION_KEYS: '', STORAGE_ENCRYPTION_KMS_KEY_ID: kms.keyArn });
    expect((await readAll(kmsOnly, before.fileId)).equals(old)).toBe(true);
    expect((await readAll(kmsOnly, after.fileId)).equals(fresh)).toBe(true);
    const ranged = await kmsOnly.getFile('kim', before.fileId, { range: { start: 65_000, end: 140_000 } });
    expect((await buffer(ranged.stream)).equals(old.subarray(65_000, 140_001))).toBe(true);
    for (const fileId of [before.fileId, after.fileId]) {
      const manifest = JSON.parse(await (await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: manifestKey(fileId) }))).Body!.transformToString());
      expect(manifest.sealed.kek).toBe('kms');
    }
  });

  it('refuses a configuration where a static key takes the id kept for KMS', () => {
    expect(() => parseConfig({ ...env.env, STORAGE_ENCRYPTION_KEYS: `kms:${newKek()}`, STORAGE_ENCRYPTION_KMS_KEY_ID: kms.keyArn })).toThrow(/kms/);
    expect(() => parseConfig({ ...env.env, STORAGE_ENCRYPTION_KMS_KEY_ID: 'not a key' })).toThrow(/STORAGE_ENCRYPTION_KMS_KEY_ID/);
  });
});
