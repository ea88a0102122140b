import { buffer } from 'node:stream/consumers';
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config.ts';
import { StorageConnectionError } from '../../../lib/errors/catalogue.ts';
import { deadLetterStore, type DeadLetterStore } from '../../../lib/processing/dead-letters.ts';
import { processFile } from '../../../lib/processing/process-upload.ts';
import { redrive } from '../../../lib/processing/redrive.ts';
import { createStorageContext, type StorageContext } from '../../../lib/storage/storage-context.ts';
import { finalKey, incomingKey, manifestKey } from '../../../lib/storage/object-layout.ts';
import { wav } from '../../support/audio-fixtures.ts';
import { startFaultProxy, type FaultProxy } from '../../support/fault-proxy.ts';
import { sendUpload } from '../../support/http-client.ts';
import { s3Event } from '../../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * Giving up and redriving, against a real MinIO reached through a fault proxy that cuts the
 * final object's writes for one file: the storage server failing on every attempt, as a full
 * disk or a broken network would, then recovering.
 */

let env: MinioEnvironment;
let proxy: FaultProxy;
let faulty: StorageContext;
let letters: DeadLetterStore;
const OWNER = 'redriver';

beforeAll(async () => {
  env = await prepareMinioEnvironment();
  proxy = await startFaultProxy({ host: env.env.STORAGE_ENDPOINT!, port: Number(env.env.STORAGE_PORT) });
  faulty = createStorageContext(parseConfig({ ...env.env, STORAGE_ENDPOINT: proxy.host, STORAGE_PORT: String(proxy.port) }));
  letters = deadLetterStore(env.config, env.ctx.s3.internal);
});
afterAll(async () => {
  await proxy?.close();
  await env?.cleanup();
});

const writesOf = (fileId: string) => (req: IncomingMessage) => req.method !== 'GET' && (req.url ?? '').includes(`/${finalKey(fileId)}`);

async function uploaded(bytes: Buffer): Promise<string> {
  const created = await env.service.createUpload(OWNER, { filename: 'r.wav', contentType: 'audio/wav', size: bytes.length });
  expect((await sendUpload(created.upload, bytes)).status).toBe(204);
  return created.fileId;
}

async function lettersNaming(fileId: string): Promise<number> {
  let n = 0;
  for await (const letter of letters.receive(1000)) if (JSON.stringify(letter.letter).includes(fileId)) n++;
  return n;
}

/** Three deliveries that all meet the fault: the last one gives up. */
async function failForGood(fileId: string): Promise<void> {
  proxy.fail(writesOf(fileId));
  for (let attempt = 1; attempt < env.config.processing.maxAttempts; attempt++) {
    await expect(processFile(faulty, fileId, 'event')).rejects.toBeInstanceOf(StorageConnectionError);
  }
  expect(await processFile(faulty, fileId, 'event')).toMatchObject({ outcome: 'failed', fileId, reason: 'StorageConnectionError' });
}

describe('failing for good, then redrive', () => {
  it('a file whose every attempt fails ends failed, keeps its upload and files one dead letter', async () => {
    const bytes = wav(300_000);
    const fileId = await uploaded(bytes);
    await failForGood(fileId);

    expect(await env.service.getFileInfo(OWNER, fileId)).toMatchObject({
      status: 'failed',
      reason: 'processing failed after 3 attempts (StorageConnectionError)',
    });
    const keys = [...(await env.keys(env.config.bucket)), ...(await env.keys(env.config.incomingBucket))].filter((k) => k.includes(fileId));
    expect(keys.sort()).toEqual([manifestKey(fileId), incomingKey(fileId)].sort());
    expect(await lettersNaming(fileId)).toBe(1);
    // Later deliveries leave a failed file to its redrive.
    expect(await processFile(faulty, fileId, 'event')).toMatchObject({ outcome: 'skipped', reason: 'already failed' });
    expect(await processFile(faulty, fileId, 'sweep')).toMatchObject({ outcome: 'skipped', reason: 'already failed' });

    // While the fault lasts, a redrive keeps the letter and the file stays failed.
    const early = await redrive(faulty, letters);
    expect(early.kept).toBeGreaterThanOrEqual(1);
    expect((await env.service.getFileInfo(OWNER, fileId)).status).toBe('failed');
    expect(await lettersNaming(fileId)).toBe(1);

    // Fixed: the redrive stores it, byte for byte, and the letter goes.
    proxy.fail(undefined);
    const report = await redrive(faulty, letters);
    expect(report.outcomes).toContainEqual({ outcome: 'ready', fileId });
    expect(await lettersNaming(fileId)).toBe(0);
    expect((await buffer((await env.service.getFile(OWNER, fileId)).stream)).equals(bytes)).toBe(true);
    expect(await env.keys(env.config.incomingBucket)).not.toContain(incomingKey(fileId));
    // Redriving again is harmless.
    expect((await redrive(faulty, letters)).outcomes.filter((o) => o.fileId === fileId)).toEqual([]);
  });

  it('two redrives at once, while the fault lasts, keep the letter: a failed file is never left without one', async () => {
    const bytes = wav(100_000);
    const fileId = await uploaded(bytes);
    await failForGood(fileId);
    const [a, b] = await Promise.all([redrive(faulty, letters), redrive(faulty, letters)]);
    expect([...a.outcomes, ...b.outcomes].filter((o) => o.fileId === fileId).map((o) => o.outcome)).not.toContain('ready');
    expect((await env.service.getFileInfo(OWNER, fileId)).status).toBe('failed');
    expect(await lettersNaming(fileId)).toBe(1);
    proxy.fail(undefined);
    expect((await redrive(faulty, letters)).outcomes).toContainEqual({ outcome: 'ready', fileId });
    expect(await lettersNaming(fileId)).toBe(0);
  });

  it('redrives the record Lambda writes for an invocation that crashed, as well as its own', async () => {
    const bytes = wav(50_000);
    const fileId = await uploaded(bytes);
    // An invocation killed mid-run: its claim is left behind, and Lambda's destination holds the event.
    const current = (await env.ctx.manifests.read(fileId))!;
    await env.ctx.manifests.replace({ ...current.manifest, status: 'processing', attempts: 3, leaseUntil: new Date(Date.now() - 1).toISOString() }, current.etag);
    await letters.put({
      version: '1.0',
      timestamp: new Date().toISOString(),
      requestContext: { condition: 'RetriesExhausted', approximateInvokeCount: 3 },
      requestPayload: s3Event(env.config.incomingBucket, incomingKey(fileId), { flavour: 'aws' }),
      responsePayload: { errorType: 'Sandbox.Timedout', errorMessage: 'Task timed out after 900.00 seconds' },
    });
    const report = await redrive(env.ctx, letters);
    expect(report.outcomes).toContainEqual({ outcome: 'ready', fileId });
    expect(await lettersNaming(fileId)).toBe(0);
    expect((await buffer((await env.service.getFile(OWNER, fileId)).stream)).equals(bytes)).toBe(true);
  });

  it('drops a letter that names no upload, and acknowledges one whose file is already settled', async () => {
    await letters.put({ version: '1.0', timestamp: new Date().toISOString(), requestContext: { condition: 'RetriesExhausted' }, requestPayload: { hello: 'world' } });
    const fileId = await uploaded(wav(2000));
    await processFile(env.ctx, fileId, 'event');
    await letters.put({
      version: '1.0',
      timestamp: new Date().toISOString(),
      requestContext: { condition: 'RetriesExhausted' },
      requestPayload: s3Event(env.config.incomingBucket, incomingKey(fileId)),
    });
    const report = await redrive(env.ctx, letters);
    expect(report.dropped).toBeGreaterThanOrEqual(1);
    expect(report.outcomes).toContainEqual({ outcome: 'skipped', fileId, reason: 'already ready' });
    let left = 0;
    for await (const _ of letters.receive(1000)) left++;
    expect(left).toBe(0);
  });
});
