import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageConfig } from '../../../lib/config.ts';
import { StorageQuotaError } from '../../../lib/errors/catalogue.ts';
import { processFile } from '../../../lib/processing/process-upload.ts';
import { sweep } from '../../../lib/processing/sweep.ts';
import type { Manifest } from '../../../lib/storage/manifest.ts';
import { finalKey, incomingKey, pendingKey } from '../../../lib/storage/object-layout.ts';
import {
  admitChange,
  applyAudit,
  auditVerdict,
  confirmChange,
  countUsage,
  OWNER_USAGE_PREFIX,
  OwnerQuotas,
  ownerUsageKey,
  parseOwnerUsage,
  releaseChange,
  reserveChange,
  RESERVATION_SETTLE_MS,
  type OwnerUsage,
} from '../../../lib/storage/owner-quotas.ts';
import { ownerTag } from '../../../lib/storage/owner-tags.ts';
import { createStorageContext, type StorageContext } from '../../../lib/storage/storage-context.ts';
import { StorageService } from '../../../lib/service/storage-service.ts';
import { notAudio, wav } from '../../support/audio-fixtures.ts';
import { sendUpload } from '../../support/http-client.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * Per-owner quotas (lib/storage/owner-quotas.ts): the pure decisions first, then the service
 * against a real MinIO, where concurrency and crashes are real. Each test has an owner of its
 * own, and a service built with the limits it needs on the same buckets.
 */

const A = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
const B = '1a2b3c4d-5e6f-4a0b-9c1d-2e3f4a5b6c7d';
const C = '2b3c4d5e-6f70-4b1c-8d2e-3f4a5b6c7d8e';
const NOW = Date.parse('2030-01-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const usage = (files: OwnerUsage['files']): OwnerUsage => ({ version: 1, files });

describe('quota decisions (pure)', () => {
  it('counts stored entries and live reservations, not run-out ones', () => {
    const u = usage({ [A]: { bytes: 100 }, [B]: { bytes: 50, reservedUntil: iso(NOW + 1) }, [C]: { bytes: 7, reservedUntil: iso(NOW) } });
    expect(countUsage(u, NOW)).toEqual({ bytes: 150, files: 2 });
    expect(countUsage(u, NOW, A)).toEqual({ bytes: 50, files: 1 });
  });

  it('reserves within the limits, refuses past either, and drops run-out reservations when it writes', () => {
    const u = usage({ [A]: { bytes: 600 }, [C]: { bytes: 999, reservedUntil: iso(NOW - 1) } });
    const ok = reserveChange(u, B, 400, NOW + 1000, { bytes: 1000, files: undefined }, NOW);
    expect(ok).toEqual({ write: usage({ [A]: { bytes: 600 }, [B]: { bytes: 400, reservedUntil: iso(NOW + 1000), reservedAt: iso(NOW) } }) });
    expect(reserveChange(u, B, 401, NOW + 1000, { bytes: 1000, files: undefined }, NOW)).toMatchObject({ refuse: { details: { usedBytes: 600, requestedBytes: 401, limitBytes: 1000 } } });
    expect(reserveChange(u, B, 1, NOW + 1000, { bytes: undefined, files: 1 }, NOW)).toMatchObject({ refuse: { details: { usedFiles: 1, limitFiles: 1 } } });
    // A retried reservation of the same file changes nothing.
    expect(reserveChange((ok as { write: OwnerUsage }).write, B, 400, NOW + 1000, { bytes: 1000, files: undefined }, NOW)).toEqual({ keep: true });
  });

  it('admits at the commit what fits with the file counted once, holds it a while, and refuses what does not', () => {
    const limits = { bytes: 1000, files: 2 };
    const held = usage({ [A]: { bytes: 600 }, [B]: { bytes: 400, reservedUntil: iso(NOW + 3_600_000), reservedAt: iso(NOW - 5) } });
    expect(admitChange(held, B, 400, limits, NOW)).toEqual({ keep: true });
    // Its reservation ran out and someone else took the room meanwhile: refused.
    const taken = usage({ [A]: { bytes: 600 }, [C]: { bytes: 400, reservedUntil: iso(NOW + 5000) }, [B]: { bytes: 400, reservedUntil: iso(NOW - 1) } });
    expect(admitChange(taken, B, 400, limits, NOW)).toHaveProperty('refuse');
    // Ran out, but there is room: taken again, for the hold.
    const room = usage({ [A]: { bytes: 600 }, [B]: { bytes: 400, reservedUntil: iso(NOW - 1), reservedAt: iso(NOW - 9) } });
    const admitted = admitChange(room, B, 400, limits, NOW) as { write: OwnerUsage };
    expect(Date.parse(admitted.write.files[B]!.reservedUntil!)).toBeGreaterThan(NOW + 60_000);
  });

  it('confirm and release are idempotent by file', () => {
    const u = usage({ [A]: { bytes: 600, reservedUntil: iso(NOW + 5) } });
    const confirmed = (confirmChange(u, A, 600, NOW) as { write: OwnerUsage }).write;
    expect(confirmed.files[A]).toEqual({ bytes: 600 });
    expect(confirmChange(confirmed, A, 600, NOW)).toEqual({ keep: true });
    expect((releaseChange(confirmed, A, NOW) as { write: OwnerUsage }).write.files).toEqual({});
    expect(releaseChange(usage({}), A, NOW)).toEqual({ keep: true });
  });

  it('an audit drops what a crash left, and nothing a run may still be writing', () => {
    const manifest = (status: Manifest['status'], owner = 'o') => ({ owner, status, fileId: A, stored: { size: 9 } }) as Manifest;
    const stored = { bytes: 9 };
    expect(auditVerdict(stored, undefined, 'o', NOW)).toBe('drop');
    expect(auditVerdict(stored, manifest('ready', 'other'), 'o', NOW)).toBe('drop');
    expect(auditVerdict(stored, manifest('ready'), 'o', NOW)).toBe('keep');
    expect(auditVerdict(stored, 'unreadable', 'o', NOW)).toBe('keep');
    const fresh = { bytes: 9, reservedUntil: iso(NOW + 10), reservedAt: iso(NOW - 1000) };
    expect(auditVerdict(fresh, undefined, 'o', NOW)).toBe('keep'); // its create may still be writing the manifest
    const old = { ...fresh, reservedAt: iso(NOW - RESERVATION_SETTLE_MS - 1) };
    expect(auditVerdict(old, undefined, 'o', NOW)).toBe('drop');
    expect(auditVerdict(old, manifest('rejected'), 'o', NOW)).toBe('drop');
    expect(auditVerdict(old, manifest('processing'), 'o', NOW)).toBe('keep');
    expect(auditVerdict(old, manifest('ready'), 'o', NOW)).toEqual({ stored: 9 });
    const audited = applyAudit(usage({ [A]: old, [B]: stored }), new Map([[A, { entry: old, verdict: { stored: 9 } }], [B, { entry: stored, verdict: 'drop' as const }]]), NOW);
    expect(audited).toEqual({ version: 1, files: { [A]: { bytes: 9 } }, auditedAt: iso(NOW) });
  });

  it('an unreadable record is an error, never a reset to zero', () => {
    for (const text of ['', '{', '{"version":2,"files":{}}', `{"version":1,"files":{"${A}":{"bytes":-1}}}`, '{"version":1,"files":{"x":{"bytes":1}}}']) {
      expect(() => parseOwnerUsage(text), text).toThrow(/unreadable/);
    }
    expect(parseOwnerUsage(`{"version":1,"files":{"${A}":{"bytes":3}}}`)).toEqual(usage({ [A]: { bytes: 3 } }));
  });
});

let env: MinioEnvironment;

beforeAll(async () => {
  env = await prepareMinioEnvironment();
});
afterAll(() => env.cleanup());

/** A service on the test's buckets with the given limits. */
function withLimits(bytesPerOwner: number | undefined, filesPerOwner: number | undefined): { ctx: StorageContext; service: StorageService; quotas: OwnerQuotas } {
  const config: StorageConfig = { ...env.config, quotas: { bytesPerOwner, filesPerOwner } };
  const ctx = createStorageContext(config);
  return { ctx, service: new StorageService(ctx), quotas: new OwnerQuotas(ctx) };
}

const declared = (size: number) => ({ filename: 'session.wav', contentType: 'audio/wav', size });

async function ownerRecord(ctx: StorageContext, owner: string): Promise<{ key: string; usage: OwnerUsage }> {
  const key = ownerUsageKey(await ownerTag(ctx, owner));
  const out = await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: key }));
  return { key, usage: JSON.parse(await out.Body!.transformToString()) as OwnerUsage };
}

/** What time does to reservations, without waiting for it: every reservation of the owner has run out. */
async function runOutReservations(ctx: StorageContext, owner: string): Promise<void> {
  const { key, usage } = await ownerRecord(ctx, owner);
  for (const entry of Object.values(usage.files)) if (entry.reservedUntil !== undefined) entry.reservedUntil = iso(Date.now() - 1000);
  await env.admin.send(new PutObjectCommand({ Bucket: env.config.bucket, Key: key, Body: JSON.stringify(usage) }));
}

async function uploadAndProcess(ctx: StorageContext, service: StorageService, owner: string, bytes: Buffer) {
  const created = await service.createUpload(owner, declared(bytes.length));
  expect((await sendUpload(created.upload, bytes)).status).toBe(204);
  return { fileId: created.fileId, outcome: await processFile(ctx, created.fileId, 'event') };
}

describe('quotas against MinIO', () => {
  it('a create past the byte limit, or past the file limit, is refused with StorageQuotaError and writes nothing', async () => {
    const { service } = withLimits(5000, 2);
    const owner = 'limits@example.com';
    await service.createUpload(owner, declared(3000));
    const before = await env.keys(env.config.bucket);
    const refused = await service.createUpload(owner, declared(2001)).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(StorageQuotaError);
    expect(refused).toMatchObject({ status: 409, expose: true, operation: 'createUpload', details: { usedBytes: 3000, requestedBytes: 2001, limitBytes: 5000 } });
    expect((refused as Error).message).toMatch(/5000/);
    expect(await env.keys(env.config.bucket)).toEqual(before);

    await service.createUpload(owner, declared(2000)); // exactly at the byte limit, and the second file
    const third = await service.createUpload(owner, declared(1)).catch((error: unknown) => error);
    expect(third).toMatchObject({ name: 'StorageQuotaError', details: { usedFiles: 2, limitFiles: 2 } });
  });

  it('creates at once that jointly exceed the limit: exactly as many succeed as fit', async () => {
    const { service, quotas } = withLimits(10_000, undefined);
    const owner = 'burst@example.com';
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => service.createUpload(owner, declared(4000))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    const refusals = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refusals).toHaveLength(4);
    for (const refusal of refusals) expect(refusal.reason).toBeInstanceOf(StorageQuotaError);
    expect(await quotas.usageOf(owner)).toEqual({ bytes: 8000, files: 2 });
  });

  it('two uploads whose reservations ran out are checked again at the commit: one ready, the other rejected and its object removed', async () => {
    const { ctx, service, quotas } = withLimits(undefined, 1);
    const owner = 'commit@example.com';
    const first = await service.createUpload(owner, declared(20_000));
    await runOutReservations(ctx, owner);
    const second = await service.createUpload(owner, declared(30_000));
    await runOutReservations(ctx, owner);
    expect(await quotas.usageOf(owner)).toEqual({ bytes: 0, files: 0 });
    expect((await sendUpload(first.upload, wav(20_000))).status).toBe(204);
    expect((await sendUpload(second.upload, wav(30_000))).status).toBe(204);

    const outcomes = await Promise.all([first.fileId, second.fileId].map((id) => processFile(ctx, id, 'event')));
    expect(outcomes.map((o) => o.outcome).sort()).toEqual(['ready', 'rejected']);
    const rejected = outcomes.find((o) => o.outcome === 'rejected')!;
    const ready = outcomes.find((o) => o.outcome === 'ready')!;
    expect((await service.getFileInfo(owner, rejected.fileId!)).reason).toMatch(/quota/i);
    const keys = await env.keys(env.config.bucket);
    expect(keys).not.toContain(finalKey(rejected.fileId!));
    expect(keys).not.toContain(pendingKey(rejected.fileId!));
    expect(keys).toContain(finalKey(ready.fileId!));
    expect(await env.keys(env.config.incomingBucket)).not.toContain(incomingKey(rejected.fileId!));
    const size = (await service.getFileInfo(owner, ready.fileId!)).size;
    expect(await quotas.usageOf(owner)).toEqual({ bytes: size, files: 1 });
  });

  it('a delete gives the room back; so do a rejected upload and an expired one', async () => {
    const { ctx, service, quotas } = withLimits(undefined, 1);
    const owner = 'frees@example.com';
    const stored = await service.storeFile(owner, wav(8000), declared(8000));
    expect(await quotas.usageOf(owner)).toEqual({ bytes: 8000, files: 1 });
    await expect(service.createUpload(owner, declared(100))).rejects.toBeInstanceOf(StorageQuotaError);
    await service.deleteFile(owner, stored.fileId);
    expect(await quotas.usageOf(owner)).toEqual({ bytes: 0, files: 0 });

    const { outcome } = await uploadAndProcess(ctx, service, owner, notAudio(4096));
    expect(outcome.outcome).toBe('rejected');
    expect(await quotas.usageOf(owner)).toEqual({ bytes: 0, files: 0 });

    const never = await service.createUpload(owner, declared(100));
    await expect(service.createUpload(owner, declared(100))).rejects.toBeInstanceOf(StorageQuotaError);
    const report = await sweep(ctx, { now: Date.now() + (env.config.uploadUrlTtlSeconds + env.config.sweep.uploadGraceSeconds + 60) * 1000 });
    expect(report.expired).toBeGreaterThanOrEqual(1);
    expect((await service.getFileInfo(owner, never.fileId)).status).toBe('expired');
    expect(await quotas.usageOf(owner)).toEqual({ bytes: 0, files: 0 });
    await service.createUpload(owner, declared(100));
  });

  it('storeFile is held to the limits too, at its start and at its commit, and leaves nothing when refused', async () => {
    const { ctx, service, quotas } = withLimits(10_000, undefined);
    const owner = 'backend@example.com';
    const before = await env.keys(env.config.bucket);
    await expect(service.storeFile(owner, wav(10_001), declared(10_001))).rejects.toBeInstanceOf(StorageQuotaError);
    await service.storeFile(owner, wav(6000), declared(6000));
    await expect(service.storeFile(owner, wav(6000), declared(6000))).rejects.toMatchObject({ name: 'StorageQuotaError', operation: 'storeFile' });

    // At its commit: a slow caller's stream, whose reservation runs out while another upload takes the room.
    const bytes = wav(4000);
    const slow = new PassThrough();
    slow.write(bytes.subarray(0, 1000));
    const storing = service.storeFile(owner, slow, declared(4000)).catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await runOutReservations(ctx, owner);
    const other = await service.createUpload(owner, declared(4000));
    slow.end(bytes.subarray(1000));
    expect(await storing).toMatchObject({ name: 'StorageQuotaError', operation: 'storeFile' });
    expect(await quotas.usageOf(owner)).toEqual({ bytes: 10_000, files: 2 });

    const after = (await env.keys(env.config.bucket)).filter((k) => !before.includes(k));
    // One recording and its manifest, the other upload's manifest and marker, the owner's usage record: nothing of the refused ones.
    expect(after.filter((k) => k.startsWith('files/'))).toHaveLength(1);
    expect(after.filter((k) => k.startsWith('manifests/'))).toHaveLength(2);
    expect(after.filter((k) => k.startsWith('pending/'))).toEqual([pendingKey(other.fileId)]);
    expect(after).toContain(ownerUsageKey(await ownerTag(ctx, owner)));
  });

  it('a create killed between its reservation and its manifest holds the room only until the reservation runs out', async () => {
    const { service, quotas } = withLimits(undefined, 1);
    const owner = 'killed-create@example.com';
    await quotas.reserve(owner, A, 10, Date.now() + 1500, 'createUpload');
    await expect(service.createUpload(owner, declared(10))).rejects.toBeInstanceOf(StorageQuotaError);
    await new Promise((resolve) => setTimeout(resolve, 1600));
    await service.createUpload(owner, declared(10));
  });

  it('a delete killed after the manifest went, before the room was given back: the next refusal audits the entry away', async () => {
    const { ctx, service, quotas } = withLimits(undefined, 1);
    const owner = 'killed-delete@example.com';
    const stored = await service.storeFile(owner, wav(5000), declared(5000));
    await ctx.manifests.delete(stored.fileId);
    expect(await quotas.usageOf(owner)).toEqual({ bytes: 5000, files: 1 });
    const next = await service.createUpload(owner, declared(10)); // refused at first, audited, then admitted
    const { usage } = await ownerRecord(ctx, owner);
    expect(usage.auditedAt).toBeDefined();
    expect(Object.keys(usage.files)).toEqual([next.fileId]);
  });

  it('a run killed after ready, before it counted the file: the sweep counts it from the marker left', async () => {
    const { ctx, service, quotas } = withLimits(undefined, 1);
    const owner = 'killed-run@example.com';
    const { fileId, outcome } = await uploadAndProcess(ctx, service, owner, wav(7000));
    expect(outcome.outcome).toBe('ready');
    await quotas.release(owner, fileId, 'test');
    await ctx.pending.add(fileId);
    expect(await quotas.usageOf(owner)).toEqual({ bytes: 0, files: 0 });
    await sweep(ctx, { now: Date.now() + (env.config.uploadUrlTtlSeconds + env.config.sweep.uploadGraceSeconds + 60) * 1000 });
    expect(await quotas.usageOf(owner)).toEqual({ bytes: 7000, files: 1 });
    expect(await env.keys(env.config.bucket)).not.toContain(pendingKey(fileId));
  });

  it('no key and no object names the owner: neither the owner string nor its plain SHA-256', async () => {
    const { ctx, service } = withLimits(1_000_000, 10);
    const owner = 'Dr.Jane.Doe+therapy@example.org';
    await uploadAndProcess(ctx, service, owner, wav(9000));
    await service.createUpload(owner, declared(100));
    await service.storeFile(owner, wav(3000), declared(3000));
    const forbidden = [owner, owner.toLowerCase(), 'jane.doe', createHash('sha256').update(owner).digest('hex'), createHash('sha256').update(owner).digest('base64')];
    const tag = await ownerTag(ctx, owner);
    let usageRecords = 0;
    for (const bucket of [env.config.bucket, env.config.incomingBucket]) {
      const listed = await env.admin.send(new ListObjectsV2Command({ Bucket: bucket }));
      for (const { Key } of listed.Contents ?? []) {
        if (Key!.startsWith(OWNER_USAGE_PREFIX)) usageRecords++;
        const body = Buffer.from(await (await env.admin.send(new GetObjectCommand({ Bucket: bucket, Key }))).Body!.transformToByteArray()).toString('latin1');
        for (const text of forbidden) {
          expect(Key!.toLowerCase(), Key).not.toContain(text.toLowerCase());
          expect(body.toLowerCase(), Key).not.toContain(text.toLowerCase());
        }
      }
    }
    expect(usageRecords).toBeGreaterThan(0);
    expect(await env.keys(env.config.bucket)).toContain(ownerUsageKey(tag));
    expect(tag).toMatch(/^[0-9a-f]{32}$/);
  });

  it('with no limit set, nothing changes: the create path sends exactly the calls it did, and no usage record is written', async () => {
    const commands = (ctx: StorageContext) => {
      const names: string[] = [];
      ctx.s3.internal.middlewareStack.add((next, context) => (args) => (names.push(context.commandName ?? '?'), next(args)), { step: 'initialize', name: 'countCommands' });
      return names;
    };
    const off = withLimits(undefined, undefined);
    const offCalls = commands(off.ctx);
    const owner = 'unlimited@example.com';
    await off.service.createUpload(owner, declared(100));
    expect(offCalls).toEqual(['PutObjectCommand', 'PutObjectCommand']); // the pending marker, the manifest
    const { outcome } = await uploadAndProcess(off.ctx, off.service, owner, wav(4000));
    expect(outcome.outcome).toBe('ready');
    // For comparison, with a limit: the owner-tag key (read once per context), the usage record read and written.
    const on = withLimits(1_000_000, undefined);
    const onCalls = commands(on.ctx);
    await on.service.createUpload('limited@example.com', declared(100));
    expect(onCalls.filter((name) => name === 'GetObjectCommand').length).toBeGreaterThanOrEqual(2);
    expect(onCalls.filter((name) => name === 'PutObjectCommand')).toHaveLength(3);
    expect(await env.keys(env.config.bucket)).not.toContain(ownerUsageKey(await ownerTag(off.ctx, owner)));
  });
});

describe('an over-quota refusal as a client sees it', () => {
  it('renders as 409 with the catalogue error shape', async () => {
    const { renderError } = await import('../../../lib/http/error-response.ts');
    const { service } = withLimits(undefined, 1);
    await service.createUpload('shape@example.com', declared(1));
    const error = await service.createUpload('shape@example.com', declared(1)).catch((e: StorageQuotaError) => e);
    const response = renderError(error as StorageQuotaError, 'req-1');
    expect(response.statusCode).toBe(409);
    const body = JSON.parse(response.body as string);
    expect(Object.keys(body.error).sort()).toEqual(['message', 'operation', 'requestId', 'timestamp', 'type']);
    expect(body.error).toMatchObject({ type: 'StorageQuotaError', operation: 'createUpload', requestId: 'req-1' });
    expect(body.error.message).toMatch(/Delete recordings/);
    expect(JSON.stringify(body)).not.toContain('shape@example.com');
  });
});
