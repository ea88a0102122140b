import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { CopyObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config.ts';
import { StorageFileCorruptedError, StorageFileNotFoundError } from '../../../lib/errors/catalogue.ts';
import { rotateKeys } from '../../../lib/service/key-rotation.ts';
import { ReadyManifests } from '../../../lib/service/ready-manifests.ts';
import { StorageService } from '../../../lib/service/storage-service.ts';
import type { Manifest } from '../../../lib/storage/manifest.ts';
import { finalKey } from '../../../lib/storage/object-layout.ts';
import { recordDeletion } from '../../../lib/storage/recovery.ts';
import { createStorageContext, type StorageContext } from '../../../lib/storage/storage-context.ts';
import { wav } from '../../support/audio-fixtures.ts';
import { newKek, prepareMinioEnvironment, type MinioEnvironment } from '../../support/minio-environment.ts';

/**
 * Reads with no manifest round trip (lib/service/ready-manifests.ts), on real MinIO. "Process A"
 * is a service whose S3 commands are counted; "process B" is another service on a context of its
 * own, sharing nothing with A but the buckets, as another Lambda instance would.
 */

let env: MinioEnvironment;
let a: StorageService;
let aContext: StorageContext;
let keys: string;
/** The same keys, k2 active: what rotation moves to. */
let rotated: string;
const sent: Array<{ command: string; key: string | undefined }> = [];

const processB = (settings: Record<string, string> = {}) => new StorageService(createStorageContext(parseConfig({ ...env.env, STORAGE_ENCRYPTION_KEYS: keys, ...settings })));
const range = { start: 100_000, end: 100_000 + 1024 * 1024 - 1 };

async function readRange(service: StorageService, owner: string, fileId: string): Promise<Buffer> {
  return buffer((await service.getFile(owner, fileId, { range })).stream);
}

async function stored(owner: string, size = 1_500_000) {
  const bytes = wav(size);
  const info = await a.storeFile(owner, Readable.from([bytes]), { filename: 'visit.wav', contentType: 'audio/wav', size: bytes.length });
  return { fileId: info.fileId, bytes };
}

beforeAll(async () => {
  const k1 = `k1:${newKek()}`;
  const k2 = `k2:${newKek()}`;
  // k1 active (named last); k2 known too, so that rotating to k2 leaves every process able to read.
  keys = `${k2},${k1}`;
  env = await prepareMinioEnvironment({ STORAGE_ENCRYPTION_KEYS: keys });
  aContext = createStorageContext(env.config);
  aContext.s3.internal.middlewareStack.add(
    (next, context) => async (args) => {
      sent.push({ command: context.commandName ?? '', key: (args.input as { Key?: string }).Key });
      return next(args);
    },
    { step: 'initialize', name: 'countCommandsInTest' },
  );
  a = new StorageService(aContext);
  rotated = `${k1},${k2}`;
}, 60_000);
afterAll(() => env?.cleanup());
beforeEach(() => {
  sent.length = 0;
});

describe('range reads with the ready manifest cached', () => {
  it('a warm range read is one GET of the recording: no manifest read, the bytes right', async () => {
    const { fileId, bytes } = await stored('ines');
    expect((await readRange(a, 'ines', fileId)).equals(bytes.subarray(range.start, range.end + 1))).toBe(true);
    sent.length = 0;
    expect((await readRange(a, 'ines', fileId)).equals(bytes.subarray(range.start, range.end + 1))).toBe(true);
    expect(sent).toEqual([{ command: 'GetObjectCommand', key: finalKey(fileId) }]);

    // A whole read too, its SHA-256 still checked; and getFileInfo fills the cache as any manifest read does.
    sent.length = 0;
    expect((await buffer((await a.getFile('ines', fileId)).stream)).equals(bytes)).toBe(true);
    expect(sent).toEqual([{ command: 'GetObjectCommand', key: finalKey(fileId) }]);
    const other = await stored('ines', 300_000);
    await a.getFileInfo('ines', other.fileId);
    sent.length = 0;
    expect((await readRange(a, 'ines', other.fileId)).equals(other.bytes.subarray(range.start, range.end + 1))).toBe(true);
    expect(sent.map((s) => s.command)).toEqual(['GetObjectCommand']);
  });

  it('a delete by another process is honoured at once: 404, with no hint; a restore serves the file again', async () => {
    const { fileId, bytes } = await stored('joan');
    await readRange(a, 'joan', fileId);
    const b = processB();
    expect(await b.deleteFile('joan', fileId)).toBe(true);
    await expect(readRange(a, 'joan', fileId)).rejects.toBeInstanceOf(StorageFileNotFoundError);
    await b.restoreFile('joan', fileId);
    expect((await readRange(a, 'joan', fileId)).equals(bytes.subarray(range.start, range.end + 1))).toBe(true);
    // Purged by another process: gone too.
    await b.deleteFile('joan', fileId, { purge: true });
    await expect(readRange(a, 'joan', fileId)).rejects.toBeInstanceOf(StorageFileNotFoundError);
  });

  it('a delete cut short between manifest and recording is closed by its retry, and the file stays restorable', async () => {
    const { fileId, bytes } = await stored('kurt');
    await readRange(a, 'kurt', fileId);
    const b = processB();
    // What process B's delete does first, and then it dies: the entry, then the manifest.
    const bContext = createStorageContext(env.config);
    await recordDeletion(bContext, 'kurt', fileId, 'test');
    await bContext.manifests.delete(fileId);
    // The window the retry closes: the recording is still current, and A's cached manifest matches it.
    await expect(b.getFile('kurt', fileId, { range })).rejects.toBeInstanceOf(StorageFileNotFoundError);
    expect((await readRange(a, 'kurt', fileId)).length).toBe(1024 * 1024);
    // The retried DELETE: nothing was there to answer (404 as before), but the recording goes before it answers.
    expect(await b.deleteFile('kurt', fileId)).toBe(false);
    await expect(env.admin.send(new HeadObjectCommand({ Bucket: env.config.bucket, Key: finalKey(fileId) }))).rejects.toMatchObject({ name: 'NotFound' });
    await expect(readRange(a, 'kurt', fileId)).rejects.toBeInstanceOf(StorageFileNotFoundError);
    // A retry again writes nothing more; the file is restored whole.
    expect(await b.deleteFile('kurt', fileId)).toBe(false);
    expect((await b.listDeletedFiles('kurt')).map((f) => f.fileId)).toEqual([fileId]);
    await b.restoreFile('kurt', fileId);
    expect((await readRange(a, 'kurt', fileId)).equals(bytes.subarray(range.start, range.end + 1))).toBe(true);
  });

  it('after key rotation (the data key re-wrapped in the object metadata) a cached read still decrypts, in one GET', async () => {
    const { fileId, bytes } = await stored('lena');
    await readRange(a, 'lena', fileId);
    const report = await rotateKeys(createStorageContext(parseConfig({ ...env.env, STORAGE_ENCRYPTION_KEYS: rotated })));
    expect(report.objectsRewrapped).toBeGreaterThan(0);
    const head = await env.admin.send(new HeadObjectCommand({ Bucket: env.config.bucket, Key: finalKey(fileId) }));
    expect(head.Metadata?.['enc-kek']).toBe('k2');
    sent.length = 0;
    expect((await readRange(a, 'lena', fileId)).equals(bytes.subarray(range.start, range.end + 1))).toBe(true);
    expect(sent.map((s) => s.command)).toEqual(['GetObjectCommand']);
  });

  it('a recording replaced behind the cache (another seal id) is refused as on the full path', async () => {
    const victim = await stored('mona');
    const intruder = await stored('mona', 1_200_000);
    await readRange(a, 'mona', victim.fileId);
    await env.admin.send(
      new CopyObjectCommand({ Bucket: env.config.bucket, Key: finalKey(victim.fileId), CopySource: `${env.config.bucket}/${finalKey(intruder.fileId)}` }),
    );
    sent.length = 0;
    await expect(readRange(a, 'mona', victim.fileId)).rejects.toBeInstanceOf(StorageFileCorruptedError);
    // The cached GET, then the full path: the manifest read beside a GET, which decides.
    expect(sent.filter((s) => s.key === `manifests/${victim.fileId}.json`)).toHaveLength(1);
    await expect(readRange(a, 'mona', victim.fileId)).rejects.toBeInstanceOf(StorageFileCorruptedError);
  });

  it("another owner gets the 404 of a missing file from a warm cache, by the same path (a manifest read)", async () => {
    const { fileId } = await stored('nina');
    await readRange(a, 'nina', fileId);
    sent.length = 0;
    const intruder = await a.getFile('olga', fileId, { range }).catch((error: unknown) => error);
    const intruderCommands = sent.map((s) => s.command).sort();
    sent.length = 0;
    const missing = await a.getFile('olga', crypto.randomUUID(), { range }).catch((error: unknown) => error);
    expect(intruder).toBeInstanceOf(StorageFileNotFoundError);
    expect(missing).toBeInstanceOf(StorageFileNotFoundError);
    expect((intruder as Error).message).toBe((missing as Error).message);
    expect(intruderCommands).toEqual(sent.map((s) => s.command).sort());
    // The owner still reads from the cache.
    sent.length = 0;
    await readRange(a, 'nina', fileId);
    expect(sent.map((s) => s.command)).toEqual(['GetObjectCommand']);
  });

  it('a range past the end and an oversized whole read are decided by the full path, as before', async () => {
    const { fileId, bytes } = await stored('pia', 200_000);
    await readRange(a, 'pia', fileId).catch(() => undefined);
    await expect(a.getFile('pia', fileId, { range: { start: bytes.length } })).rejects.toMatchObject({ name: 'RangeNotSatisfiableError' });
    await expect(a.getFile('pia', fileId, { maxLength: 1000 })).rejects.toMatchObject({ name: 'StorageFileSizeError' });
    const tail = await a.getFile('pia', fileId, { range: { suffix: 10 } });
    expect((await buffer(tail.stream)).equals(bytes.subarray(bytes.length - 10))).toBe(true);
  });
});

describe('ReadyManifests (the cache itself)', () => {
  const manifest = (fileId: string, changes: Partial<Manifest> = {}): Manifest => ({
    version: 1,
    fileId,
    owner: 'o',
    filename: 'f.wav',
    contentType: 'audio/wav',
    extension: 'wav',
    size: 10,
    status: 'ready',
    createdAt: '',
    updatedAt: '',
    uploadExpiresAt: '',
    attempts: 1,
    stored: { sha256: 'x', size: 10, storedSize: 42, encrypted: true, sealId: 's', frameSize: 65_536 },
    ...changes,
  });

  it('keeps only ready manifests with a seal id to check the recording by', () => {
    const cache = new ReadyManifests();
    cache.remember(manifest('a', { status: 'processing' }));
    cache.remember(manifest('b', { stored: { sha256: 'x', size: 10, storedSize: 42, encrypted: true, frameSize: 65_536 } }));
    cache.remember(manifest('c', { stored: undefined }));
    cache.remember(manifest('d'));
    expect(cache.size).toBe(1);
    expect(cache.get('d')?.fileId).toBe('d');
  });

  it('forgets the least recently used beyond its bound, and any entry after its TTL', () => {
    let now = 0;
    const cache = new ReadyManifests({ maxEntries: 2, ttlMs: 1000, now: () => now });
    cache.remember(manifest('a'));
    cache.remember(manifest('b'));
    cache.get('a');
    cache.remember(manifest('c'));
    expect([cache.get('a')?.fileId, cache.get('b'), cache.get('c')?.fileId]).toEqual(['a', undefined, 'c']);
    now = 999;
    expect(cache.get('a')).toBeDefined();
    now = 1000;
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(1);
    cache.forget('c');
    expect(cache.size).toBe(0);
  });
});
