import { CopyObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as getContent } from '../../../functions/get-file.ts';
import { handler as getInfo } from '../../../functions/get-file-info.ts';
import { processFile } from '../../../lib/processing/process-upload.ts';
import { StorageService } from '../../../lib/service/storage-service.ts';
import { createStorageContext } from '../../../lib/storage/storage-context.ts';
import { finalKey, manifestKey } from '../../../lib/storage/object-layout.ts';
import { sha256, wav } from '../../support/audio-fixtures.ts';
import { invoke } from '../../support/handlers.ts';
import { sendUpload } from '../../support/http-client.ts';
import { apiEvent } from '../../support/lambda-events.ts';
import { prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * The attacks on manifests an auditor tried, against real MinIO, by someone who can read and
 * write the final bucket but holds no key: read personal data, edit what a read trusts, put
 * another file's manifest or object in place, put back an older manifest. Each ends in the
 * catalogue's error, never in wrong bytes.
 */

let env: MinioEnvironment;
let token: string;
const OWNER = 'john.doe@example.com';
const FILENAME = 'Jane_Roe-therapy-session-2026.wav';
const a = { fileId: '', bytes: wav(5 * 65536 + 77) };
const b = { fileId: '', bytes: wav(4 * 65536 + 5) };

const raw = async (key: string) => (await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: key }))).Body!.transformToString();
const put = (key: string, body: string) => env.admin.send(new PutObjectCommand({ Bucket: env.config.bucket, Key: key, Body: body }));
const content = (fileId: string, headers: Record<string, string> = {}) =>
  invoke(getContent, apiEvent({ method: 'GET', path: `/files/${fileId}/content`, fileId, token, headers }));

beforeAll(async () => {
  env = await prepareMinioEnvironment();
  token = await env.token(OWNER);
  for (const file of [a, b]) {
    const info = await env.service.storeFile(OWNER, file.bytes, {
      filename: FILENAME,
      contentType: 'audio/wav',
      size: file.bytes.length,
      metadata: { patient: 'Jane Roe', diagnosis: 'confidential-note' },
    });
    file.fileId = info.fileId;
  }
});
afterAll(() => env?.cleanup());

describe('sealed manifests at rest', () => {
  it('hold no owner, filename, metadata or hash in the clear, and what operations list stays readable', async () => {
    const text = await raw(manifestKey(a.fileId));
    for (const secret of [OWNER, 'john.doe', FILENAME, 'Jane', 'Roe', 'confidential-note', 'patient', sha256(a.bytes)]) expect(text).not.toContain(secret);
    expect(JSON.parse(text)).toMatchObject({ version: 2, fileId: a.fileId, status: 'ready', stored: { size: a.bytes.length, encrypted: true } });
    expect(await env.service.getFileInfo(OWNER, a.fileId)).toMatchObject({ filename: FILENAME, metadata: { patient: 'Jane Roe' } });
  });

  it('an edit of what a read trusts (stored.encrypted=false) answers the catalogue error, never ciphertext as content', async () => {
    const original = await raw(manifestKey(a.fileId));
    try {
      const edited = JSON.parse(original);
      edited.stored.encrypted = false;
      await put(manifestKey(a.fileId), JSON.stringify(edited));
      const ranged = await content(a.fileId, { range: 'bytes=0-1023' });
      expect(ranged.status).toBe(500);
      expect(ranged.json.error).toMatchObject({ type: 'StorageMetadataError', fileId: a.fileId });
      expect((await invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${a.fileId}`, fileId: a.fileId, token }))).json.error.type).toBe('StorageMetadataError');
      // Any clear field, even one that only looks harmless.
      for (const change of [(m: any) => (m.status = 'processing'), (m: any) => (m.size += 1), (m: any) => (m.stored.frameSize = 1024), (m: any) => (m.extra = 1)]) {
        const other = JSON.parse(original);
        change(other);
        await put(manifestKey(a.fileId), JSON.stringify(other));
        await expect(env.service.getFileInfo(OWNER, a.fileId)).rejects.toMatchObject({ name: 'StorageMetadataError' });
      }
      // A manifest rewritten in the clear by someone without the keys is refused, not trusted.
      const { sealed: _sealed, ...clear } = JSON.parse(original);
      await put(manifestKey(a.fileId), JSON.stringify({ ...clear, version: 1, owner: OWNER, filename: 'x.wav', contentType: 'audio/wav', extension: 'wav', stored: { ...clear.stored, encrypted: false, sha256: sha256(a.bytes) } }));
      expect((await content(a.fileId, { range: 'bytes=0-1023' })).json.error.type).toBe('StorageMetadataError');
    } finally {
      await put(manifestKey(a.fileId), original);
    }
    expect(sha256((await content(a.fileId)).bytes)).toBe(sha256(a.bytes));
  });

  it("another file's manifest put in place is refused", async () => {
    const original = await raw(manifestKey(a.fileId));
    try {
      await put(manifestKey(a.fileId), await raw(manifestKey(b.fileId)));
      await expect(env.service.getFileInfo(OWNER, a.fileId)).rejects.toMatchObject({ name: 'StorageMetadataError' });
      // Read by a process that holds no manifest of the file: a function that read it before serves
      // what it authenticated then, until its next manifest read (lib/service/ready-manifests.ts).
      const fresh = new StorageService(createStorageContext(env.config));
      await expect(fresh.getFile(OWNER, a.fileId, { range: { start: 0, end: 99 } })).rejects.toMatchObject({ name: 'StorageMetadataError' });
      // The function's own manifest read that fails drops what it held: its content reads refuse too.
      expect((await invoke(getInfo, apiEvent({ method: 'GET', path: `/files/${a.fileId}`, fileId: a.fileId, token }))).json.error.type).toBe('StorageMetadataError');
      expect((await content(a.fileId, { range: 'bytes=0-99' })).json.error.type).toBe('StorageMetadataError');
    } finally {
      await put(manifestKey(a.fileId), original);
    }
  });

  it("another file's object put in place of this one's is refused, for whole and ranged reads", async () => {
    // Kept aside, then put back: a copy within the bucket keeps the object byte for byte.
    const aside = `${finalKey(a.fileId)}-aside`;
    await env.admin.send(new CopyObjectCommand({ Bucket: env.config.bucket, Key: aside, CopySource: `${env.config.bucket}/${finalKey(a.fileId)}` }));
    try {
      await env.admin.send(new CopyObjectCommand({ Bucket: env.config.bucket, Key: finalKey(a.fileId), CopySource: `${env.config.bucket}/${finalKey(b.fileId)}` }));
      for (const headers of [{}, { range: 'bytes=0-1023' }, { range: 'bytes=70000-' }] as Record<string, string>[]) {
        const reply = await content(a.fileId, headers);
        expect(reply.status).toBe(500);
        expect(reply.json.error.type).toBe('StorageFileCorruptedError');
      }
    } finally {
      await env.admin.send(new CopyObjectCommand({ Bucket: env.config.bucket, Key: finalKey(a.fileId), CopySource: `${env.config.bucket}/${aside}` }));
    }
    expect((await buffer((await env.service.getFile(OWNER, a.fileId)).stream)).equals(a.bytes)).toBe(true);
  });

  it('an older manifest of the same file put back says what was true then, and serves no bytes', async () => {
    const bytes = wav(300_000);
    const created = await env.service.createUpload(OWNER, { filename: FILENAME, contentType: 'audio/wav', size: bytes.length });
    const older = await raw(manifestKey(created.fileId));
    expect((await sendUpload(created.upload, bytes)).status).toBe(204);
    expect(await processFile(env.ctx, created.fileId, 'event')).toMatchObject({ outcome: 'ready' });
    const ready = await raw(manifestKey(created.fileId));
    const aManifest = await raw(manifestKey(a.fileId));
    await put(manifestKey(created.fileId), older);
    try {
      expect(await env.service.getFileInfo(OWNER, created.fileId)).toMatchObject({ status: 'awaiting_upload' });
      const reply = await content(created.fileId, { range: 'bytes=0-99' });
      expect(reply.status).toBe(409);
      expect(reply.json.error.type).toBe('StorageFileNotReadyError');
      // Renamed to be another file's, it does not authenticate at all.
      await put(manifestKey(a.fileId), older.replaceAll(created.fileId, a.fileId));
      await expect(env.service.getFileInfo(OWNER, a.fileId)).rejects.toMatchObject({ name: 'StorageMetadataError' });
    } finally {
      await put(manifestKey(created.fileId), ready);
      await put(manifestKey(a.fileId), aManifest);
    }
    expect((await buffer((await env.service.getFile(OWNER, created.fileId)).stream)).equals(bytes)).toBe(true);
  });
});
