import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitRecording } from '../../../lib/processing/commit-recording.ts';
import { Lease } from '../../../lib/processing/lease.ts';
import { processFile } from '../../../lib/processing/process-upload.ts';
import { sealRecording } from '../../../lib/processing/seal-recording.ts';
import { StorageService } from '../../../lib/service/storage-service.ts';
import { storedSealId } from '../../../lib/storage/file-objects.ts';
import { incomingKey } from '../../../lib/storage/object-layout.ts';
import { sha256, wav } from '../../support/audio-fixtures.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * The commit of a sealed recording when another run took the file over (lib/processing/commit-recording.ts),
 * on a real MinIO: the run that lost its lease may still have completed its object after the
 * winner's, and the file must stay readable whichever object is in place.
 */

let env: MinioEnvironment;
beforeAll(async () => {
  env = await prepareMinioEnvironment();
});
afterAll(() => env.cleanup());

describe('commitRecording after a takeover', () => {
  it("a losing run whose object landed after the winner's: the manifest is pointed at the object in place, and the file reads whole", async () => {
    const bytes = wav(300_000);
    const created = await env.service.createUpload('owen', { filename: 'a.wav', contentType: 'audio/wav', size: bytes.length });
    const { fileId } = created;
    await env.admin.send(new PutObjectCommand({ Bucket: env.config.incomingBucket, Key: incomingKey(fileId), Body: bytes }));

    // The loser claims the file with a lease already run out (it stalled), so that the winner may take it.
    const current = (await env.ctx.manifests.read(fileId))!;
    const claimed = { ...current.manifest, status: 'processing' as const, attempts: 1, leaseUntil: new Date(Date.now() - 1000).toISOString() };
    const etag = (await env.ctx.manifests.replace(claimed, current.etag))!;
    const loserLease = new Lease(env.ctx.manifests, { manifest: claimed, etag }, env.config.processing.leaseSeconds);

    // The winner takes over and finishes: ready, its own object.
    expect(await processFile(env.ctx, fileId, 'sweep')).toMatchObject({ outcome: 'ready' });
    const winnerSeal = (await env.ctx.manifests.read(fileId))!.manifest.stored!.sealId;

    // The loser's object completes afterwards, over the winner's; then its commit finds the file taken.
    const sealed = await sealRecording({
      s3: env.ctx.s3.internal,
      bucket: env.config.bucket,
      fileId,
      source: Readable.from([bytes]),
      extension: 'wav',
      expectedSize: bytes.length,
      maxSize: env.config.maxFileSize,
      keyring: env.ctx.keyring,
    });
    expect(await storedSealId(env.ctx, fileId, 'test')).toBe(sealed.sealId);
    expect(sealed.sealId).not.toBe(winnerSeal);
    expect(await commitRecording(env.ctx, { owner: 'owen', fileId, lease: loserLease, sealed, operation: 'test' })).toEqual({ outcome: 'taken_over' });

    const after = (await env.ctx.manifests.read(fileId))!.manifest;
    expect(after).toMatchObject({ status: 'ready', stored: { sealId: sealed.sealId, sha256: sha256(bytes) } });
    // A fresh service: nothing cached from before.
    const read = await new StorageService(env.ctx).getFile('owen', fileId);
    expect((await buffer(read.stream)).equals(bytes)).toBe(true);
  });
});
