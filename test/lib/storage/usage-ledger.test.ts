import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

vi.hoisted(() => {
  // vitest.config.ts turns metrics off for every file; this one reads the sweep's gauges.
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
});

import { handler as deleteFile } from '../../../functions/delete-file.ts';
import { handler as processUpload } from '../../../functions/process-upload.ts';
import { handler as sweepFunction } from '../../../functions/sweep.ts';
import { incomingKey } from '../../../lib/storage/object-layout.ts';
import { USAGE_TOTALS_KEY, UsageLedger, usageChangeKey } from '../../../lib/storage/usage-ledger.ts';
import { wav } from '../../support/audio-fixtures.ts';
import { captureEmf } from '../../support/emf-capture.ts';
import { uploadRecording } from '../../support/file-flow.ts';
import { invoke } from '../../support/handlers.ts';
import { apiEvent, lambdaContext, s3Event } from '../../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * The usage ledger against a real MinIO: files that become ready and files deleted, folded by
 * the sweep into usage/totals.json and the StorageUsedBytes / StoredFiles gauges. The totals
 * are the bucket's: the first test starts from an empty one, the others count from what it left.
 */

let env: MinioEnvironment;
let token: string;
let emf: ReturnType<typeof captureEmf>;

beforeAll(async () => {
  env = await prepareMinioEnvironment();
  token = await env.token('ledger');
});
afterAll(() => env.cleanup());
beforeEach(() => {
  emf = captureEmf();
});
afterEach(() => emf.restore());

const runSweep = () => (sweepFunction as (e: unknown, c: unknown) => Promise<{ usage?: { bytes: number; files: number } }>)({}, lambdaContext());
const storedTotals = async () => {
  const out = await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: USAGE_TOTALS_KEY }));
  return JSON.parse(await out.Body!.transformToString()) as { bytes: number; files: number };
};
const ledger = () => new UsageLedger(env.ctx.s3.internal, env.config.bucket);
const isReady = async (fileId: string) => (await env.ctx.manifests.read(fileId))?.manifest.status === 'ready';

describe('usage ledger', () => {
  it('three files ready and one deleted: totals.json and the gauges are the exact sums', async () => {
    const sizes = [10_000, 23_456, 70_001];
    const ids = [];
    for (const size of sizes) ids.push(await uploadRecording(env, token, wav(size)));
    const removed = await invoke(deleteFile, apiEvent({ method: 'DELETE', path: `/files/${ids[1]}`, fileId: ids[1]!, token }));
    expect(removed.status).toBe(204);
    emf.clear();
    const report = await runSweep();
    const expected = { bytes: 10_000 + 70_001, files: 2 };
    expect(report.usage).toEqual(expected);
    expect(await storedTotals()).toMatchObject(expected);
    expect(emf.values('StorageUsedBytes')).toEqual([expected.bytes]);
    expect(emf.values('StoredFiles')).toEqual([expected.files]);
    expect(emf.values('OldestWaitingUploadSeconds')).toEqual([0]);
    // Folded changes are gone; a second sweep finds nothing new and says the same.
    expect((await env.keys(env.config.bucket)).filter((k) => k.startsWith('usage/changes/'))).toEqual([]);
    emf.clear();
    await runSweep();
    expect(emf.values('StorageUsedBytes')).toEqual([expected.bytes]);
    // Deleting a file folded earlier uncounts it by the bytes it was counted with.
    await invoke(deleteFile, apiEvent({ method: 'DELETE', path: `/files/${ids[2]}`, fileId: ids[2]!, token }));
    expect((await runSweep()).usage).toEqual({ bytes: 10_000, files: 1 });
  });

  it('counts the same event delivered twice once, before and after a fold', async () => {
    const base = (await runSweep()).usage!;
    const bytes = wav(12_345);
    const fileId = await uploadRecording(env, token, bytes);
    const event = s3Event(env.config.incomingBucket, incomingKey(fileId), { flavour: 'minio' });
    const again = () => (processUpload as (e: unknown, c: unknown) => Promise<unknown>)(event, lambdaContext());
    await again();
    const want = { bytes: base.bytes + 12_345, files: base.files + 1 };
    expect((await runSweep()).usage).toEqual(want);
    // Another fold in between, so that the last fold's record no longer names this change.
    await uploadRecording(env, token, wav(1_000));
    want.bytes += 1_000;
    want.files += 1;
    expect((await runSweep()).usage).toEqual(want);
    // Delivered once more after the folds: the change is written again, and not counted again.
    await again();
    expect((await env.keys(env.config.bucket)).filter((k) => k.startsWith('usage/changes/'))).toEqual([usageChangeKey(fileId, 'add')]);
    expect((await runSweep()).usage).toEqual(want);
    expect(await storedTotals()).toMatchObject(want);
  });

  it('finishes a fold cut short after its totals were written, without counting twice', async () => {
    const l = ledger();
    const base = await l.fold(isReady);
    const fileId = await uploadRecording(env, token, wav(5_000));
    const want = { bytes: base.bytes + 5_000, files: base.files + 1 };
    // A fold that dies after writing the totals: its change and marker steps never happen.
    const s3 = env.ctx.s3.internal;
    const send = s3.send.bind(s3);
    const spy = vi.spyOn(s3, 'send').mockImplementation((async (command: { constructor: { name: string }; input: { Key?: string } }, ...rest: unknown[]) => {
      if (command.constructor.name !== 'GetObjectCommand' && command.constructor.name !== 'ListObjectsV2Command' && command.input.Key !== USAGE_TOTALS_KEY) {
        throw new Error('killed');
      }
      return (send as (...a: unknown[]) => unknown)(command, ...rest);
    }) as never);
    try {
      await expect(l.fold(isReady)).rejects.toThrow(); // mapped into the catalogue by backend()
    } finally {
      spy.mockRestore();
    }
    expect(await storedTotals()).toMatchObject(want);
    expect(await l.fold(isReady)).toMatchObject(want);
    expect(await l.fold(isReady)).toMatchObject(want);
    const usage = (await env.keys(env.config.bucket)).filter((k) => k.startsWith('usage/'));
    expect(usage.filter((k) => k.startsWith('usage/changes/'))).toEqual([]);
    expect(usage).toContain(`usage/files/${fileId}`);
  });

  it('never counts a file deleted before the fold, even when no remove was written', async () => {
    const base = await ledger().fold(isReady);
    const fileId = await uploadRecording(env, token, wav(4_000));
    // A delete that raced the run's commit writes no remove: only the manifest is gone.
    await env.ctx.manifests.delete(fileId);
    expect(await ledger().fold(isReady)).toMatchObject({ bytes: base.bytes, files: base.files });
  });

  it('a manifest that does not open holds back its own change only: the fold goes on, and counts it once it opens', async () => {
    const base = await ledger().fold(isReady);
    const stuck = await uploadRecording(env, token, wav(5_000));
    const other = await uploadRecording(env, token, wav(6_000));
    const unreadable = async (fileId: string) => (fileId === stuck ? undefined : isReady(fileId));
    const folded = await ledger().fold(unreadable);
    expect(folded).toMatchObject({ bytes: base.bytes + 6_000, files: base.files + 1 });
    expect(await env.keys(env.config.bucket)).toContain(usageChangeKey(stuck, 'add'));
    expect(await ledger().fold(isReady)).toMatchObject({ bytes: base.bytes + 11_000, files: base.files + 2 });
    expect(other).not.toBe(stuck);
  });
});
