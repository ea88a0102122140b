import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../lib/config.ts';
import { Keyring, type KeyEncryptionKey } from '../../../lib/crypto/keyring.ts';
import {
  FileIdInUseError,
  StorageFileCorruptedError,
  StorageFileNotFoundError,
  StorageMetadataError,
  ValidationError,
} from '../../../lib/errors/catalogue.ts';
import { openSealedExport, type SealedExport } from '../../../lib/service/sealed-export.ts';
import { createStorageContext } from '../../../lib/storage/storage-context.ts';
import { StorageService } from '../../../lib/service/storage-service.ts';
import { removeAllVersions } from '../../../lib/storage/recovery.ts';
import { finalKey } from '../../../lib/storage/object-layout.ts';
import { processFile } from '../../../lib/processing/process-upload.ts';
import { sweep } from '../../../lib/processing/sweep.ts';
import { startFaultProxy } from '../../support/fault-proxy.ts';
import { sendUpload } from '../../support/http-client.ts';
import { m4a, mp3, sha256, wav } from '../../support/audio-fixtures.ts';
import { newKek, prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

let env: MinioEnvironment;

beforeAll(async () => {
  env = await prepareMinioEnvironment();
});
afterAll(() => env.cleanup());

describe('StorageService (library API for backends)', () => {
  it('storeFile streams a recording through checks and encryption; getFile streams it back', async () => {
    const bytes = wav(2 * 1024 * 1024 + 7);
    const info = await env.service.storeFile('backend-user', Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), {
      filename: 'call.wav',
      contentType: 'audio/wav',
      size: bytes.length,
    });
    expect(info).toMatchObject({ status: 'ready', size: bytes.length, sha256: sha256(bytes), encrypted: true });

    const whole = await env.service.getFile('backend-user', info.fileId);
    expect(whole.contentLength).toBe(bytes.length);
    expect((await buffer(whole.stream)).equals(bytes)).toBe(true);

    const ranged = await env.service.getFile('backend-user', info.fileId, { range: { start: 1_000_000, end: 1_100_000 } });
    expect(ranged.range).toEqual({ start: 1_000_000, end: 1_100_000, total: bytes.length });
    expect((await buffer(ranged.stream)).equals(bytes.subarray(1_000_000, 1_100_001))).toBe(true);

    expect(await env.service.getFileSize('backend-user', info.fileId)).toBe(bytes.length);
    expect((await env.service.getFileInfo('backend-user', info.fileId)).filename).toBe('call.wav');
    await env.service.deleteFile('backend-user', info.fileId);
    await expect(env.service.getFileInfo('backend-user', info.fileId)).rejects.toBeInstanceOf(StorageFileNotFoundError);
  });

  it('storeFile refuses content that is not what was declared, and leaves nothing behind', async () => {
    const before = await env.keys(env.config.bucket);
    await expect(
      env.service.storeFile('backend-user', mp3(5000), { filename: 'x.m4a', contentType: 'audio/mp4', size: 5000 }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(
      env.service.storeFile('backend-user', m4a(5000), { filename: 'x.m4a', contentType: 'audio/mp4', size: 4000 }),
    ).rejects.toThrow(/larger than declared/);
    expect(await env.keys(env.config.bucket)).toEqual(before);
  });

  it('a whole read whose plaintext no longer matches the recorded SHA-256 fails the stream', async () => {
    const bytes = wav(10_000);
    const info = await env.service.storeFile('u', bytes, { filename: 'a.wav', contentType: 'audio/wav', size: bytes.length });
    // Rewrite the manifest's hash: the ciphertext still authenticates, the SHA-256 check must catch it.
    const manifests = env.ctx.manifests;
    const current = (await manifests.read(info.fileId))!;
    await manifests.replace({ ...current.manifest, stored: { ...current.manifest.stored!, sha256: sha256(wav(100)) } }, current.etag);
    const read = await env.service.getFile('u', info.fileId);
    await expect(buffer(read.stream)).rejects.toBeInstanceOf(StorageFileCorruptedError);
  });

  it('reads files sealed under an older key after the active key rotates', async () => {
    const oldKey = newKek();
    const before = new StorageService(createStorageContext(parseConfig({ ...env.env, STORAGE_ENCRYPTION_KEYS: `old:${oldKey}` })));
    const bytes = mp3(200_000);
    const stored = await before.storeFile('u', bytes, { filename: 'a.mp3', contentType: 'audio/mpeg', size: bytes.length });

    const after = new StorageService(
      createStorageContext(
        parseConfig({ ...env.env, STORAGE_ENCRYPTION_KEYS: `old:${oldKey},new:${newKek()}`, STORAGE_ENCRYPTION_ACTIVE_KEY_ID: 'new' }),
      ),
    );
    expect((await buffer((await after.getFile('u', stored.fileId)).stream)).equals(bytes)).toBe(true);
    const fresh = await after.storeFile('u', bytes, { filename: 'b.mp3', contentType: 'audio/mpeg', size: bytes.length });
    const object = await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: finalKey(fresh.fileId) }));
    expect(object.Metadata?.['enc-kek']).toBe('new');
    await object.Body?.transformToByteArray();

    const withoutOld = new StorageService(createStorageContext(parseConfig({ ...env.env, STORAGE_ENCRYPTION_KEYS: `new:${newKek()}` })));
    await expect(withoutOld.getFile('u', stored.fileId)).rejects.toThrow();
  });

  it('stores in the clear when encryption is disabled, still hashed and checked', async () => {
    const clear = new StorageService(
      createStorageContext(parseConfig({ ...env.env, STORAGE_ENCRYPTION_ENABLED: 'false', STORAGE_ENCRYPTION_KEYS: '' })),
    );
    const bytes = wav(100_000);
    const info = await clear.storeFile('u', bytes, { filename: 'a.wav', contentType: 'audio/wav', size: bytes.length });
    expect(info.encrypted).toBe(false);
    const object = await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: finalKey(info.fileId) }));
    expect(Buffer.from(await object.Body!.transformToByteArray()).equals(bytes)).toBe(true);
    const ranged = await clear.getFile('u', info.fileId, { range: { suffix: 10 } });
    expect((await buffer(ranged.stream)).equals(bytes.subarray(-10))).toBe(true);
    // A bounded range first guesses an encrypted layout; the manifest says otherwise and wins.
    const bounded = await clear.getFile('u', info.fileId, { range: { start: 70_000, end: 80_000 } });
    expect((await buffer(bounded.stream)).equals(bytes.subarray(70_000, 80_001))).toBe(true);
    // Where encryption is on, a clear manifest is refused until npm run rotate-keys seals it
    // (test/lib/service/key-rotation.test.ts): it could as well be an attacker's edit.
    await expect(env.service.getFile('u', info.fileId)).rejects.toMatchObject({ name: 'StorageMetadataError' });
  });

  it('a delete racing a run that commits just before the manifest goes leaves nothing behind', async () => {
    // The owner's delete reaches MinIO through a proxy that holds its manifest DELETE back (a slow
    // or retried call): the run completes its object and commits in that window.
    const proxy = await startFaultProxy({ host: env.env.STORAGE_ENDPOINT!, port: Number(env.env.STORAGE_PORT) });
    try {
      const deleting = new StorageService(
        createStorageContext(parseConfig({ ...env.env, STORAGE_ENDPOINT: proxy.host, STORAGE_PORT: String(proxy.port) })),
      );
      const bytes = wav(12 * 1024 * 1024);
      const created = await env.service.createUpload('racer', { filename: 'r.wav', contentType: 'audio/wav', size: bytes.length });
      expect((await sendUpload(created.upload, bytes)).status).toBe(204);
      const { fileId } = created;
      proxy.delay((req) => req.method === 'DELETE' && (req.url ?? '').includes(`/manifests/${fileId}.json`), 1500);
      const run = processFile(env.ctx, fileId, 'event');
      while ((await env.ctx.manifests.read(fileId))?.manifest.status !== 'processing') await new Promise((r) => setTimeout(r, 10));
      await deleting.deleteFile('racer', fileId);
      expect(await run).toEqual({ outcome: 'ready', fileId });
      const traces = async () =>
        [...(await env.keys(env.config.bucket)), ...(await env.keys(env.config.incomingBucket))].filter((k) => k.includes(fileId));
      // The run's usage change waits for the sweep's fold, which does not count it: the file is gone.
      expect((await traces()).filter((k) => !k.startsWith('pending/') && !k.startsWith('usage/changes/'))).toEqual([]);
      await sweep(env.ctx, { now: Date.now() + 3 * env.config.processing.leaseSeconds * 1000 });
      expect(await traces()).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});

describe('storeFile with a caller\'s fileId, metadata and encrypt (the storage guide\'s calls)', () => {
  const declared = (bytes: Buffer, more: Record<string, unknown> = {}) => ({ filename: 'call.wav', contentType: 'audio/wav', size: bytes.length, ...more });
  const objectOf = async (fileId: string) => {
    const out = await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: finalKey(fileId) }));
    return { etag: out.ETag, bytes: Buffer.from(await out.Body!.transformToByteArray()) };
  };
  const service = (overrides: Record<string, string>) => new StorageService(createStorageContext(parseConfig({ ...env.env, ...overrides })));

  it('stores under the caller\'s UUID, with its metadata, and getFile returns the stream with that metadata', async () => {
    const fileId = randomUUID();
    const bytes = wav(150_000);
    const info = await env.service.storeFile('guide', bytes, declared(bytes, { fileId, metadata: { speaker: 'dr-roe', visit: '42' } }));
    expect(info).toMatchObject({ fileId, status: 'ready', encrypted: true, metadata: { speaker: 'dr-roe', visit: '42' } });
    expect(await env.keys(env.config.bucket)).toEqual(expect.arrayContaining([finalKey(fileId), `manifests/${fileId}.json`]));
    const { stream, info: read } = await env.service.getFile('guide', fileId);
    expect(read).toEqual(info);
    expect((await buffer(stream)).equals(bytes)).toBe(true);
  });

  it.each([['../x'], ['a/b'], ['files/x'], [''], [randomUUID().toUpperCase()], [`${randomUUID()}/..`], [42]])(
    'refuses the fileId %j (a UUID, never a path) and writes nothing',
    async (fileId) => {
      const before = await env.keys(env.config.bucket);
      const bytes = wav(1000);
      const refused = env.service.storeFile('guide', bytes, declared(bytes, { fileId: fileId as string }));
      await expect(refused).rejects.toBeInstanceOf(ValidationError);
      await expect(refused).rejects.toThrow(/fileId must be a UUID/);
      expect(await env.keys(env.config.bucket)).toEqual(before);
    },
  );

  it('refuses an id in use, by its owner or another, ready or awaiting its upload, and leaves that file as it was', async () => {
    const bytes = wav(70_000);
    const existing = await env.service.storeFile('first', bytes, declared(bytes, { fileId: randomUUID(), metadata: { mine: 'yes' } }));
    const manifestBefore = (await env.ctx.manifests.read(existing.fileId))!;
    const objectBefore = await objectOf(existing.fileId);
    const keysBefore = await env.keys(env.config.bucket);
    for (const owner of ['first', 'someone-else']) {
      const other = wav(5000);
      const refused = env.service.storeFile(owner, other, declared(other, { fileId: existing.fileId }));
      await expect(refused).rejects.toBeInstanceOf(FileIdInUseError);
      await expect(refused).rejects.toMatchObject({ status: 409, fileId: existing.fileId, operation: 'storeFile' });
    }
    // Untouched: the same manifest version, the same object, no marker left behind, still readable.
    expect((await env.ctx.manifests.read(existing.fileId))!.etag).toBe(manifestBefore.etag);
    expect(await objectOf(existing.fileId)).toEqual(objectBefore);
    expect(await env.keys(env.config.bucket)).toEqual(keysBefore);
    expect((await buffer((await env.service.getFile('first', existing.fileId)).stream)).equals(bytes)).toBe(true);

    // A file awaiting its upload has a pending marker: that is claimed by no one else either.
    const waiting = await env.service.createUpload('first', { filename: 'w.wav', contentType: 'audio/wav', size: 5000 });
    const waitingBefore = (await env.ctx.manifests.read(waiting.fileId))!;
    const other = wav(5000);
    await expect(env.service.storeFile('first', other, declared(other, { fileId: waiting.fileId }))).rejects.toBeInstanceOf(FileIdInUseError);
    expect((await env.ctx.manifests.read(waiting.fileId))!.etag).toBe(waitingBefore.etag);
    expect(await env.keys(env.config.bucket)).toContain(`pending/${waiting.fileId}`);

    // Deleted before it settled, its id stays taken: while the sweep may still remove leftovers
    // under it, and, in the versioned bucket, while any version of its manifest is kept (the
    // recovery window): a restore or purge of the old file must never find another one there.
    await env.service.deleteFile('first', waiting.fileId);
    await expect(env.service.storeFile('first', other, declared(other, { fileId: waiting.fileId }))).rejects.toBeInstanceOf(FileIdInUseError);
    await sweep(env.ctx, { now: Date.now() + 3 * env.config.processing.leaseSeconds * 1000 });
    expect((await env.keys(env.config.bucket)).filter((k) => k.includes(waiting.fileId))).toEqual([]);
    await expect(env.service.storeFile('first', other, declared(other, { fileId: waiting.fileId }))).rejects.toBeInstanceOf(FileIdInUseError);
    // Once no version is left (a purge, or the lifecycle after the window), the id may be used.
    await removeAllVersions(env.ctx, `manifests/${waiting.fileId}.json`, 'test');
    const reused = await env.service.storeFile('first', other, declared(other, { fileId: waiting.fileId }));
    expect((await buffer((await env.service.getFile('first', reused.fileId)).stream)).equals(other)).toBe(true);
  });

  it('two concurrent storeFile calls with one id: exactly one wins, the other is refused, and the winner\'s bytes are intact', async () => {
    for (let round = 0; round < 3; round++) {
      const fileId = randomUUID();
      const a = wav(300_000);
      const b = wav(300_000);
      const results = await Promise.allSettled([
        env.service.storeFile('racer-a', a, declared(a, { fileId })),
        env.service.storeFile('racer-b', b, declared(b, { fileId })),
      ]);
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      expect(won).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(lost.reason).toBeInstanceOf(FileIdInUseError);
      const [owner, bytes] = won[0] === 0 ? ['racer-a', a] : ['racer-b', b];
      expect((await buffer((await env.service.getFile(owner, fileId)).stream)).equals(bytes)).toBe(true);
      await expect(env.service.getFileInfo(owner === 'racer-a' ? 'racer-b' : 'racer-a', fileId)).rejects.toBeInstanceOf(StorageFileNotFoundError);
      // One file's objects, no marker left (the usage ledger's change records aside).
      expect((await env.keys(env.config.bucket)).filter((k) => k.includes(fileId) && !k.startsWith('usage/')).sort()).toEqual([finalKey(fileId), `manifests/${fileId}.json`]);
    }
  });

  it('encrypt defaults to the deployment; encrypt: false is refused where it encrypts (no plaintext at rest), nothing written', async () => {
    const bytes = wav(20_000);
    expect((await env.service.storeFile('guide', bytes, declared(bytes))).encrypted).toBe(true);
    const stated = await env.service.storeFile('guide', bytes, declared(bytes, { encrypt: true }));
    expect(stated.encrypted).toBe(true);
    expect((await objectOf(stated.fileId)).bytes.equals(bytes)).toBe(false);

    const before = await env.keys(env.config.bucket);
    const fileId = randomUUID();
    const refused = env.service.storeFile('guide', bytes, declared(bytes, { fileId, encrypt: false }));
    await expect(refused).rejects.toBeInstanceOf(ValidationError);
    await expect(refused).rejects.toThrow(/no recording in the clear/);
    await expect(env.service.storeFile('guide', bytes, declared(bytes, { encrypt: 'false' }))).rejects.toThrow(/encrypt must be true or false/);
    expect(await env.keys(env.config.bucket)).toEqual(before);
  });

  it('encrypt: true where encryption is not configured is the configuration error, never a file in the clear', async () => {
    const bytes = wav(20_000);
    const before = await env.keys(env.config.bucket);
    const disabled = service({ STORAGE_ENCRYPTION_ENABLED: 'false', STORAGE_ENCRYPTION_KEYS: '' });
    const noKeys = service({ STORAGE_ENCRYPTION_KEYS: '' });
    for (const s of [disabled, noKeys]) {
      const refused = s.storeFile('guide', bytes, declared(bytes, { fileId: randomUUID(), encrypt: true }));
      await expect(refused).rejects.toBeInstanceOf(ConfigError);
      await expect(refused).rejects.toThrow(/STORAGE_ENCRYPTION_(ENABLED|KEYS)/);
    }
    // Encryption on and no keys: the default (encrypt: true) is refused the same way.
    await expect(noKeys.storeFile('guide', bytes, declared(bytes))).rejects.toBeInstanceOf(ConfigError);
    expect(await env.keys(env.config.bucket)).toEqual(before);
  });

  it('encrypt: false where the deployment does not encrypt stores plaintext; reads, ranges included, work', async () => {
    const clear = service({ STORAGE_ENCRYPTION_ENABLED: 'false', STORAGE_ENCRYPTION_KEYS: '' });
    const bytes = wav(200_000);
    const fileId = randomUUID();
    const info = await clear.storeFile('guide', bytes, declared(bytes, { fileId, encrypt: false, metadata: { k: 'v' } }));
    expect(info).toMatchObject({ fileId, encrypted: false, metadata: { k: 'v' } });
    const manifest = (await clear.context.manifests.read(fileId))!.manifest;
    expect(manifest.stored).toMatchObject({ encrypted: false, size: bytes.length, storedSize: bytes.length });
    expect((await objectOf(fileId)).bytes.equals(bytes)).toBe(true);
    expect((await buffer((await clear.getFile('guide', fileId)).stream)).equals(bytes)).toBe(true);
    const ranged = await clear.getFile('guide', fileId, { range: { start: 65_000, end: 140_000 } });
    expect((await buffer(ranged.stream)).equals(bytes.subarray(65_000, 140_001))).toBe(true);
    expect((await buffer((await clear.getFile('guide', fileId, { range: { suffix: 99 } })).stream)).equals(bytes.subarray(-99))).toBe(true);
  });
});

describe('getFile with decrypt: false, and opening the export later with the keys', () => {
  const declared = (bytes: Buffer) => ({ filename: 'call.wav', contentType: 'audio/wav', size: bytes.length, metadata: { case: 'c-7' } });

  it('exports the sealed bytes as stored with what opens them; deleted from storage, the export opens byte-identical', async () => {
    const bytes = wav(5 * 65_536 + 1234);
    const { fileId } = await env.service.storeFile('archivist', bytes, declared(bytes));
    const exported = await env.service.getFile('archivist', fileId, { decrypt: false });
    const sealedBytes = await buffer(exported.stream);
    const stored = await env.admin.send(new GetObjectCommand({ Bucket: env.config.bucket, Key: finalKey(fileId) }));
    expect(sealedBytes.equals(Buffer.from(await stored.Body!.transformToByteArray()))).toBe(true);
    expect(sealedBytes.includes(bytes.subarray(1000, 1064))).toBe(false);
    expect(exported.contentLength).toBe(sealedBytes.length);
    expect(exported.info).toMatchObject({ fileId, metadata: { case: 'c-7' }, size: bytes.length, sha256: sha256(bytes) });
    expect(exported.range).toBeUndefined();
    expect(exported.sealed).toEqual({
      encrypted: true,
      version: 1,
      kekId: 'k1',
      wrappedKey: stored.Metadata!['enc-key'],
      noncePrefix: stored.Metadata!['enc-nonce'],
      frameSize: 65_536,
      fileId,
      size: bytes.length,
      sha256: sha256(bytes),
      storedSize: sealedBytes.length,
    });
    // The wrapped key only: 40 bytes of AES key wrap, never the 32-byte data key.
    expect(Buffer.from((exported.sealed as { wrappedKey: string }).wrappedKey, 'base64url')).toHaveLength(40);

    // Kept as JSON beside the bytes, the file deleted from storage, opened later.
    const kept = JSON.parse(JSON.stringify(exported.sealed)) as SealedExport;
    await env.service.deleteFile('archivist', fileId, { purge: true });
    expect((await env.keys(env.config.bucket)).filter((k) => k.includes(fileId) && !k.startsWith('usage/'))).toEqual([]);
    expect((await buffer(await env.service.openSealedExport(kept, sealedBytes))).equals(bytes)).toBe(true);
    // Elsewhere, with nothing but a Keyring of the same keys.
    const { keys, activeKeyId } = env.config.encryption as { keys: KeyEncryptionKey[]; activeKeyId: string };
    const opened = await openSealedExport(kept, Readable.from([sealedBytes.subarray(0, 70_000), sealedBytes.subarray(70_000)]), new Keyring(keys, activeKeyId));
    expect((await buffer(opened)).equals(bytes)).toBe(true);

    // A flipped byte anywhere in the export, or a description changed, never yields bytes.
    for (const at of [0, 65_536 + 3, sealedBytes.length - 1]) {
      const flipped = Buffer.from(sealedBytes);
      flipped[at]! ^= 0x01;
      await expect(buffer(await env.service.openSealedExport(kept, flipped))).rejects.toBeInstanceOf(StorageFileCorruptedError);
    }
    await expect(buffer(await env.service.openSealedExport(kept, sealedBytes.subarray(0, 65_536 + 16)))).rejects.toBeInstanceOf(StorageFileCorruptedError);
    const changed: Partial<Record<keyof SealedExport, unknown>>[] = [{ fileId: randomUUID() }, { size: bytes.length - 1 }, { sha256: sha256(wav(100)) }];
    for (const change of changed) {
      await expect(buffer(await env.service.openSealedExport({ ...kept, ...change } as SealedExport, sealedBytes))).rejects.toBeInstanceOf(StorageFileCorruptedError);
    }
    const wrapped = Buffer.from((kept as { wrappedKey: string }).wrappedKey, 'base64url');
    wrapped[5]! ^= 0x01;
    await expect(env.service.openSealedExport({ ...kept, wrappedKey: wrapped.toString('base64url') } as SealedExport, sealedBytes)).rejects.toBeInstanceOf(StorageFileCorruptedError);
    // Without the keys, or with others of the same id, it does not open.
    await expect(openSealedExport(kept, sealedBytes)).rejects.toThrow(/no encryption keys/);
    await expect(openSealedExport(kept, sealedBytes, new Keyring([{ id: 'k1', key: randomBytes(32) }], 'k1'))).rejects.toBeInstanceOf(StorageFileCorruptedError);
    await expect(openSealedExport({ ...kept, noncePrefix: 'x' } as SealedExport, sealedBytes, new Keyring(keys, activeKeyId))).rejects.toBeInstanceOf(StorageMetadataError);
  });

  it('refuses a range with decrypt: false (an export is opened whole), and still serves ranges decrypted', async () => {
    const bytes = wav(10_000);
    const { fileId } = await env.service.storeFile('archivist', bytes, declared(bytes));
    await expect(env.service.getFile('archivist', fileId, { decrypt: false, range: { start: 0, end: 99 } })).rejects.toBeInstanceOf(ValidationError);
    await expect(env.service.getFile('archivist', fileId, { decrypt: 'no' as unknown as boolean })).rejects.toBeInstanceOf(ValidationError);
    await expect(env.service.getFile('someone-else', fileId, { decrypt: false })).rejects.toBeInstanceOf(StorageFileNotFoundError);
    const ranged = await env.service.getFile('archivist', fileId, { decrypt: true, range: { start: 0, end: 99 } });
    expect((await buffer(ranged.stream)).equals(bytes.subarray(0, 100))).toBe(true);
  });

  it('a file stored in the clear exports its plain bytes, described as not encrypted, and opening checks them', async () => {
    const clear = new StorageService(createStorageContext(parseConfig({ ...env.env, STORAGE_ENCRYPTION_ENABLED: 'false', STORAGE_ENCRYPTION_KEYS: '' })));
    const bytes = wav(30_000);
    const { fileId } = await clear.storeFile('archivist', bytes, declared(bytes));
    const exported = await clear.getFile('archivist', fileId, { decrypt: false });
    const plain = await buffer(exported.stream);
    expect(plain.equals(bytes)).toBe(true);
    expect(exported.sealed).toEqual({ encrypted: false, fileId, size: bytes.length, sha256: sha256(bytes), storedSize: bytes.length });
    expect((await buffer(await openSealedExport(exported.sealed, plain))).equals(bytes)).toBe(true);
    const flipped = Buffer.from(plain);
    flipped[20_000]! ^= 0x80;
    await expect(buffer(await clear.openSealedExport(exported.sealed, flipped))).rejects.toBeInstanceOf(StorageFileCorruptedError);
  });
});
