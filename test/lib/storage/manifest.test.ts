import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config.ts';
import { manifestKey } from '../../../lib/storage/object-layout.ts';
import { createStorageContext } from '../../../lib/storage/storage-context.ts';
import { startFaultProxy, type FaultProxy } from '../../support/fault-proxy.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * Manifest reads beside a write. S3 and MinIO replace an object atomically, but a store that
 * writes in place (the embedded emulator does) can serve half a manifest while it is rewritten.
 * Reproduced here on real MinIO by a proxy that tears answers: a read that meets a torn manifest
 * reads it again rather than answering 500, and only a manifest that stays damaged is one.
 */

let env: MinioEnvironment;
let proxy: FaultProxy;
let fileId: string;

beforeAll(async () => {
  env = await prepareMinioEnvironment();
  proxy = await startFaultProxy({ host: env.env.STORAGE_ENDPOINT!, port: Number(env.env.STORAGE_PORT) });
  fileId = (await env.service.createUpload('tess', { filename: 't.wav', contentType: 'audio/wav', size: 1000 })).fileId;
});
afterAll(async () => {
  await proxy?.close();
  await env?.cleanup();
});

const throughProxy = () => createStorageContext(parseConfig({ ...env.env, STORAGE_ENDPOINT: proxy.host, STORAGE_PORT: String(proxy.port) }));
const manifestGet = (url: string | undefined, method: string | undefined) => method === 'GET' && (url ?? '').includes(`/manifests/${fileId}.json`);

describe('ManifestStore.read', () => {
  it.each([0, 1, 40, 200])('reads again past a torn manifest (%i bytes served) and answers with the whole one', async (keep) => {
    let torn = 0;
    proxy.tear((req) => manifestGet(req.url, req.method) && torn++ < 2, keep);
    try {
      const read = await throughProxy().manifests.read(fileId);
      expect(torn).toBe(3);
      expect(read?.manifest).toMatchObject({ fileId, owner: 'tess', status: 'awaiting_upload' });
    } finally {
      proxy.tear(undefined);
    }
  });

  it('calls a manifest damaged once it stays torn, without reading forever', async () => {
    let reads = 0;
    proxy.tear((req) => manifestGet(req.url, req.method) && ++reads > 0, 30);
    try {
      await expect(throughProxy().manifests.read(fileId)).rejects.toMatchObject({ name: 'StorageMetadataError' });
      expect(reads).toBe(3);
    } finally {
      proxy.tear(undefined);
    }
  });

  it('does not read again what is no tear: a manifest rewritten in the clear is refused at once', async () => {
    const other = (await env.service.createUpload('tess', { filename: 'o.wav', contentType: 'audio/wav', size: 1000 })).fileId;
    const { manifest } = (await env.ctx.manifests.read(other))!;
    await env.admin.send(new PutObjectCommand({ Bucket: env.config.bucket, Key: manifestKey(other), Body: JSON.stringify(manifest) }));
    let reads = 0;
    proxy.tear((req) => (req.method === 'GET' && (req.url ?? '').includes(`/manifests/${other}.json`) && reads++, false));
    try {
      await expect(throughProxy().manifests.read(other)).rejects.toMatchObject({ name: 'StorageMetadataError' });
      expect(reads).toBe(1);
    } finally {
      proxy.tear(undefined);
    }
  });
});
