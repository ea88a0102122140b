import { execFile } from 'node:child_process';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { buffer } from 'node:stream/consumers';
import { GetBucketLifecycleConfigurationCommand, GetBucketVersioningCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileIdInUseError, StorageFileNotFoundError, StorageMetadataError, StorageQuotaError } from '../../../lib/errors/catalogue.ts';
import { sweep } from '../../../lib/processing/sweep.ts';
import { createStorageContext } from '../../../lib/storage/storage-context.ts';
import { StorageService } from '../../../lib/service/storage-service.ts';
import { ensureRecordingCurrent, finishDeletion, lastManifest, recordDeletion, undeleteManifest, undeleteRecording } from '../../../lib/storage/recovery.ts';
import { parseConfig } from '../../../lib/config.ts';
import { sha256, wav } from '../../support/audio-fixtures.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * The recovery window (lib/storage/recovery.ts) on a real, versioned MinIO: delete → list →
 * restore → byte-identical; purge → no version left; window passed → gone.
 */

let env: MinioEnvironment;
const DAY = 86_400_000;

beforeAll(async () => {
  env = await prepareMinioEnvironment({ STORAGE_RECOVERY_WINDOW_DAYS: '7', STORAGE_QUOTA_FILES_PER_OWNER: '2' });
});
afterAll(() => env.cleanup());

async function stored(owner: string, bytes: Buffer, filename = 'session.wav') {
  return env.service.storeFile(owner, Readable.from([bytes]), { filename, contentType: 'audio/wav', size: bytes.length, metadata: { case: '42' } });
}

/**
 * Every version and delete marker in the final bucket of the file's recording, manifest, markers
 * and deleted entry. (The usage ledger's changes name only the id and a byte count: the fold needs them.)
 */
async function versionsOf(fileId: string): Promise<string[]> {
  const out = await env.admin.send(new ListObjectVersionsCommand({ Bucket: env.config.bucket }));
  return [...(out.Versions ?? []), ...(out.DeleteMarkers ?? [])]
    .map((v) => v.Key ?? '')
    .filter((key) => key.includes(fileId) && !key.startsWith('usage/'));
}

describe('the recovery window', () => {
  it('the final bucket is versioned, and its noncurrent versions expire after the window', async () => {
    const versioning = await env.admin.send(new GetBucketVersioningCommand({ Bucket: env.config.bucket }));
    expect(versioning.Status).toBe('Enabled');
    const lifecycle = await env.admin.send(new GetBucketLifecycleConfigurationCommand({ Bucket: env.config.bucket }));
    expect(lifecycle.Rules).toEqual([expect.objectContaining({ Status: 'Enabled', NoncurrentVersionExpiration: expect.objectContaining({ NoncurrentDays: 7 }) })]);
  });

  it('a deleted file is listed for its owner only, then restored ready, byte-identical, under the same id', async () => {
    const bytes = wav(3 * 1024 * 1024 + 11);
    const info = await stored('rita', bytes);
    expect(await env.service.deleteFile('rita', info.fileId)).toBe(true);
    await expect(env.service.getFileInfo('rita', info.fileId)).rejects.toBeInstanceOf(StorageFileNotFoundError);
    // Deleting it again finds nothing: false, not an error.
    expect(await env.service.deleteFile('rita', info.fileId)).toBe(false);
    // While it is deleted and restorable, its id is not free for the owner's storeFile.
    await expect(env.service.storeFile('rita', Readable.from([wav(1000)]), { fileId: info.fileId, filename: 'x.wav', contentType: 'audio/wav', size: 1000 })).rejects.toBeInstanceOf(FileIdInUseError);

    const listed = await env.service.listDeletedFiles('rita');
    expect(listed).toEqual([
      expect.objectContaining({ fileId: info.fileId, filename: 'session.wav', size: bytes.length, sha256: sha256(bytes), metadata: { case: '42' } }),
    ]);
    const { deletedAt, restorableUntil } = listed[0]!;
    expect(Date.parse(restorableUntil) - Date.parse(deletedAt)).toBe(7 * DAY);
    expect(await env.service.listDeletedFiles('Rita')).toEqual([]);
    await expect(env.service.restoreFile('Rita', info.fileId)).rejects.toBeInstanceOf(StorageFileNotFoundError);
    expect(await env.service.deleteFile('mallory', info.fileId, { purge: true })).toBe(false);

    const restored = await env.service.restoreFile('rita', info.fileId);
    expect(restored).toMatchObject({ fileId: info.fileId, status: 'ready', sha256: sha256(bytes), size: bytes.length });
    const read = await env.service.getFile('rita', info.fileId);
    expect((await buffer(read.stream)).equals(bytes)).toBe(true);
    const range = await env.service.getFile('rita', info.fileId, { range: { start: 1_000_000, end: 1_200_000 } });
    expect((await buffer(range.stream)).equals(bytes.subarray(1_000_000, 1_200_001))).toBe(true);
    // Restored files are no longer listed; restoring twice is harmless.
    expect(await env.service.listDeletedFiles('rita')).toEqual([]);
    expect(await env.service.restoreFile('rita', info.fileId)).toMatchObject({ fileId: info.fileId, status: 'ready' });
    await env.service.deleteFile('rita', info.fileId, { purge: true });
  });

  it('a restored file counts against the quota again: no room, no restore, nothing changed', async () => {
    const first = await stored('quinn', wav(20_000));
    expect(await env.service.deleteFile('quinn', first.fileId)).toBe(true);
    await stored('quinn', wav(20_000), 'b.wav');
    await stored('quinn', wav(20_000), 'c.wav');
    await expect(env.service.restoreFile('quinn', first.fileId)).rejects.toBeInstanceOf(StorageQuotaError);
    await expect(env.service.getFileInfo('quinn', first.fileId)).rejects.toBeInstanceOf(StorageFileNotFoundError);
    expect((await env.service.listDeletedFiles('quinn')).map((f) => f.fileId)).toEqual([first.fileId]);
  });

  it('a purge removes every version at once, of a live file or of one already deleted', async () => {
    const live = await stored('paula', wav(50_000));
    const deleted = await stored('paula', wav(60_000), 'other.wav');
    await env.service.deleteFile('paula', deleted.fileId);
    expect(await versionsOf(deleted.fileId)).not.toEqual([]);

    expect(await env.service.deleteFile('paula', live.fileId, { purge: true })).toBe(true);
    expect(await env.service.deleteFile('paula', deleted.fileId, { purge: true })).toBe(true);
    expect(await versionsOf(live.fileId)).toEqual([]);
    expect(await versionsOf(deleted.fileId)).toEqual([]);
    expect(await env.service.listDeletedFiles('paula')).toEqual([]);
    await expect(env.service.restoreFile('paula', deleted.fileId)).rejects.toBeInstanceOf(StorageFileNotFoundError);
  });

  it('an operator erases files by id with `npm run purge`, whoever owns them, live or deleted', async () => {
    const live = await stored('olga', wav(20_000));
    const deleted = await stored('olga', wav(21_000), 'd.wav');
    await env.service.deleteFile('olga', deleted.fileId);
    const run = await promisify(execFile)(process.execPath, ['scripts/purge.ts', live.fileId, deleted.fileId], { env: { ...process.env, ...env.env } });
    expect(run.stdout).toContain(`${live.fileId}: purged (it was ready)`);
    expect(run.stdout).toContain(`${deleted.fileId}: purged (it was deleted)`);
    expect(await versionsOf(live.fileId)).toEqual([]);
    expect(await versionsOf(deleted.fileId)).toEqual([]);
    expect(await env.service.listDeletedFiles('olga')).toEqual([]);
    const refused = await promisify(execFile)(process.execPath, ['scripts/purge.ts', '../files/x'], { env: { ...process.env, ...env.env } }).catch((e: { code: number; stderr: string }) => e);
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringContaining('file ids are UUIDs') });
  });

  it('once the window has passed, the sweep purges the file: no version left, no restore', async () => {
    const info = await stored('wendy', wav(40_000));
    await env.service.deleteFile('wendy', info.fileId);
    // A sweep inside the window leaves it alone.
    await sweep(env.ctx, { now: Date.now() + 6 * DAY });
    expect(await versionsOf(info.fileId)).not.toEqual([]);
    const report = await sweep(env.ctx, { now: Date.now() + 7 * DAY + 60_000 });
    // This file, and any other test's deleted file: the sweep looks a week ahead.
    expect(report.purged).toBeGreaterThanOrEqual(1);
    expect(await versionsOf(info.fileId)).toEqual([]);
    await expect(env.service.restoreFile('wendy', info.fileId)).rejects.toBeInstanceOf(StorageFileNotFoundError);
  });

  it('refuses to restore a recording that is not the one its manifest describes', async () => {
    const a = await stored('sam', wav(30_000));
    const b = await stored('sam', wav(31_000), 'b.wav');
    await env.service.deleteFile('sam', a.fileId);
    // Someone with write access to the bucket puts another recording's bytes over the deleted one.
    const { CopyObjectCommand } = await import('@aws-sdk/client-s3');
    await env.admin.send(new CopyObjectCommand({ Bucket: env.config.bucket, Key: `files/${a.fileId}`, CopySource: `${env.config.bucket}/files/${b.fileId}` }));
    await expect(env.service.restoreFile('sam', a.fileId)).rejects.toBeInstanceOf(StorageMetadataError);
  });

  it("an id used by one owner's deleted file is never another owner's: storeFile refuses it, so no purge or expiry can reach another file", async () => {
    const info = await stored('alma', wav(12_000));
    await env.service.deleteFile('alma', info.fileId);
    await expect(env.service.storeFile('bert', Readable.from([wav(1000)]), { fileId: info.fileId, filename: 'b.wav', contentType: 'audio/wav', size: 1000 })).rejects.toBeInstanceOf(FileIdInUseError);
    expect((await env.service.listDeletedFiles('alma')).map((f) => f.fileId)).toContain(info.fileId);
    expect(await env.service.deleteFile('alma', info.fileId, { purge: true })).toBe(true);
  });

  it('a delete cut short after the manifest went is a file listed and restored whole', async () => {
    const bytes = wav(300_000);
    const info = await stored('carl', bytes);
    // What the delete does first, and nothing after: the entry, then the manifest (the recording is still current).
    await recordDeletion(env.ctx, 'carl', info.fileId, 'test');
    await env.ctx.manifests.delete(info.fileId);
    expect((await env.service.listDeletedFiles('carl')).map((f) => f.fileId)).toEqual([info.fileId]);
    expect(await env.service.restoreFile('carl', info.fileId)).toMatchObject({ status: 'ready', sha256: sha256(bytes) });
    expect((await buffer((await env.service.getFile('carl', info.fileId)).stream)).equals(bytes)).toBe(true);
  });

  it('a restore cut short is finished by the next: the recording under its marker comes back, the entry goes', async () => {
    const bytes = wav(200_000);
    const info = await stored('dora', bytes);
    await env.service.deleteFile('dora', info.fileId);
    // A restore that brought the manifest back but died before the recording and the entry (or a delete of the older order cut short).
    await undeleteManifest(env.ctx, info.fileId, 'test');
    await expect(env.service.getFile('dora', info.fileId)).rejects.toThrow();
    expect(await env.service.restoreFile('dora', info.fileId)).toMatchObject({ status: 'ready' });
    expect((await buffer((await env.service.getFile('dora', info.fileId)).stream)).equals(bytes)).toBe(true);
    expect(await env.service.listDeletedFiles('dora')).toEqual([]);
    expect((await env.service.restoreFile('dora', info.fileId)).status).toBe('ready');
  });

  it('a retried delete racing a restore never leaves the restored file without its recording, in either order', async () => {
    const bytes = wav(150_000);
    const read = async (fileId: string) => (await buffer((await env.service.getFile('erin', fileId)).stream)).equals(bytes);
    // The restore's steps, with the retried delete's (finishDeletion) between them, as two processes would interleave.
    for (const retryComes of ['between the recording and the manifest', 'after the manifest'] as const) {
      const info = await stored('erin', bytes);
      await recordDeletion(env.ctx, 'erin', info.fileId, 'test');
      await env.ctx.manifests.delete(info.fileId);
      const last = await lastManifest(env.ctx, info.fileId, 'test');
      await undeleteRecording(env.ctx, last!, 'test');
      if (retryComes === 'between the recording and the manifest') {
        await finishDeletion(env.ctx, info.fileId, 'test');
        await undeleteManifest(env.ctx, info.fileId, 'test');
        // What restoreFile does after the manifest: the marker just put back goes.
        await ensureRecordingCurrent(env.ctx, last!, 'test');
      } else {
        await undeleteManifest(env.ctx, info.fileId, 'test');
        // The retry read no manifest before the restore's last step; its marker goes once it sees the manifest back.
        await finishDeletion(env.ctx, info.fileId, 'test');
      }
      expect(await read(info.fileId), retryComes).toBe(true);
      await env.service.deleteFile('erin', info.fileId, { purge: true });
    }
  });

  it('with a window of 0, a delete is final and nothing is listed', async () => {
    const config = parseConfig({ ...env.env, STORAGE_RECOVERY_WINDOW_DAYS: '0' });
    const service = new StorageService(createStorageContext(config));
    const info = await service.storeFile('zoe', Readable.from([wav(10_000)]), { filename: 'z.wav', contentType: 'audio/wav', size: 10_000 });
    expect(await service.deleteFile('zoe', info.fileId)).toBe(true);
    expect(await service.listDeletedFiles('zoe')).toEqual([]);
    await expect(service.restoreFile('zoe', info.fileId)).rejects.toBeInstanceOf(StorageFileNotFoundError);
  });
});
