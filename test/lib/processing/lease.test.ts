import { buffer } from 'node:stream/consumers';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config.ts';
import { processFile, type ProcessOutcome } from '../../../lib/processing/process-upload.ts';
import { sweep } from '../../../lib/processing/sweep.ts';
import { createStorageContext, type StorageContext } from '../../../lib/storage/storage-context.ts';
import { finalKey, incomingKey, manifestKey } from '../../../lib/storage/object-layout.ts';
import { wav } from '../../support/audio-fixtures.ts';
import { startFaultProxy, type FaultProxy } from '../../support/fault-proxy.ts';
import { sendUpload } from '../../support/http-client.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * Leases against a real MinIO, with runs made slow by a proxy that trickles the upload to them
 * (a slow network, or a 1 GB file): a run that lasts many leases keeps its file, and a run
 * whose file is deleted stops within a lease and leaves nothing.
 */

const LEASE_S = 3;
let env: MinioEnvironment;
let proxy: FaultProxy;
let slow: StorageContext;
const OWNER = 'leaseholder';

beforeAll(async () => {
  env = await prepareMinioEnvironment({ STORAGE_PROCESSING_LEASE_SECONDS: String(LEASE_S) });
  proxy = await startFaultProxy({ host: env.env.STORAGE_ENDPOINT!, port: Number(env.env.STORAGE_PORT) });
  slow = createStorageContext(parseConfig({ ...env.env, STORAGE_ENDPOINT: proxy.host, STORAGE_PORT: String(proxy.port) }));
  proxy.slow((req) => req.method === 'GET' && (req.url ?? '').includes('/uploads/'), 1024 * 1024);
});
afterAll(async () => {
  await proxy?.close();
  await env?.cleanup();
});

async function uploaded(bytes: Buffer): Promise<string> {
  const created = await env.service.createUpload(OWNER, { filename: 'slow.wav', contentType: 'audio/wav', size: bytes.length });
  expect((await sendUpload(created.upload, bytes)).status).toBe(204);
  return created.fileId;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('processing lease', { timeout: 60_000 }, () => {
  it('is renewed while a run lasts several leases, so no other delivery or sweep takes the file over', async () => {
    const bytes = wav(9 * 1024 * 1024); // about 9 s at the proxy's 1 MiB/s
    const fileId = await uploaded(bytes);
    const running = processFile(slow, fileId, 'event');
    const seen = new Set<string>();
    const others: ProcessOutcome[] = [];
    for (let i = 0; i < 4; i++) {
      await sleep(LEASE_S * 700);
      const manifest = (await env.ctx.manifests.read(fileId))!.manifest;
      expect(manifest.status).toBe('processing');
      seen.add(manifest.leaseUntil!);
      others.push(await processFile(env.ctx, fileId, 'event'));
      const report = await sweep(env.ctx, { now: Date.now() });
      expect(report.processed.filter((o) => o.fileId === fileId && o.outcome !== 'deferred')).toEqual([]);
    }
    expect(await running).toEqual({ outcome: 'ready', fileId });
    expect(seen.size).toBeGreaterThanOrEqual(3); // renewed, not just claimed once
    expect(others.every((o) => o.outcome === 'deferred')).toBe(true);
    const info = await env.service.getFileInfo(OWNER, fileId);
    expect(info.status).toBe('ready');
    expect((await env.ctx.manifests.read(fileId))!.manifest.attempts).toBe(1);
    expect((await buffer((await env.service.getFile(OWNER, fileId)).stream)).equals(bytes)).toBe(true);
  });

  it('a run whose file is deleted under it stops within a lease and leaves no object or part behind', async () => {
    const fileId = await uploaded(wav(12 * 1024 * 1024));
    const running = processFile(slow, fileId, 'event');
    await sleep(LEASE_S * 1000);
    await env.service.deleteFile(OWNER, fileId);
    const stoppedBy = Date.now() + LEASE_S * 1000 + 2000;
    expect(await running).toMatchObject({ outcome: 'skipped', reason: 'deleted while processing' });
    expect(Date.now()).toBeLessThan(stoppedBy);
    const traces = async () =>
      [...(await env.keys(env.config.bucket)), ...(await env.keys(env.config.incomingBucket))].filter((k) => k.includes(fileId));
    expect((await traces()).filter((k) => k === finalKey(fileId) || k === manifestKey(fileId) || k === incomingKey(fileId))).toEqual([]);
    const parts = await env.admin.send(new ListMultipartUploadsCommand({ Bucket: env.config.bucket }));
    expect((parts.Uploads ?? []).filter((u) => u.Key === finalKey(fileId))).toEqual([]);
    await sweep(env.ctx, { now: Date.now() + 3 * LEASE_S * 1000 });
    expect(await traces()).toEqual([]);
  });
});
