import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { StorageFileCorruptedError, StorageMetadataError } from '../../../lib/errors/catalogue.ts';
import { KEY_LENGTH, KMS_KEK_ID, Keyring, type KeyEncryptionKey, type RemoteKeyProvider } from '../../../lib/crypto/keyring.ts';
import { SEALED_MANIFEST_VERSION, canonicalJson, openManifest, sealManifest } from '../../../lib/crypto/manifest-seal.ts';

type Json = Record<string, unknown>;

function kek(id: string): KeyEncryptionKey {
  return { id, key: createHash('sha256').update(`manifest-seal/kek/${id}`).digest() };
}

const k1 = kek('k1');
const k2 = kek('k2');
const keyring = new Keyring([k1], 'k1');

const OWNER = 'jane.roe@example.org';
const FILENAME = 'Session Jane Roe 2024-03-01.m4a';
const DECLARED_SHA256 = createHash('sha256').update('declared').digest('hex');
const STORED_SHA256 = createHash('sha256').update('stored').digest('hex');

/** A manifest as the storage code holds it in memory (manifest.ts): version 1, every field set. */
function manifest(fileId = 'f-0001', extra: Json = {}): Json {
  return {
    version: 1,
    fileId,
    owner: OWNER,
    filename: FILENAME,
    contentType: 'audio/mp4',
    uploadContentType: 'application/octet-stream',
    extension: 'm4a',
    size: 1_234_567,
    declaredSha256: DECLARED_SHA256,
    metadata: { patient: 'Jane Roe', therapist: 'Dr Rick Moe' },
    status: 'ready',
    createdAt: '2024-03-01T10:00:00.000Z',
    updatedAt: '2024-03-01T10:05:00.000Z',
    uploadExpiresAt: '2024-03-01T11:00:00.000Z',
    attempts: 1,
    multipart: { partSize: 8_388_608, uploadId: 'upload-0042' },
    leaseUntil: '2024-03-01T10:04:00.000Z',
    stored: {
      sha256: STORED_SHA256,
      size: 1_234_567,
      storedSize: 1_234_567 + 19 * 16,
      encrypted: true,
      sealId: 'seal-7f3a',
      frameSize: 65_536,
    },
    ...extra,
  };
}

/** What S3 gives back: the sealed form written as JSON and read again. */
async function store(m: Json, ring: Keyring = keyring): Promise<Json> {
  return JSON.parse(JSON.stringify(await sealManifest(m, ring))) as Json;
}

/** The error opening throws; fails the test if it opens. */
async function refusal(stored: Json, fileId: string, ring: Keyring = keyring): Promise<unknown> {
  try {
    await openManifest(stored, ring, fileId);
  } catch (error) {
    return error;
  }
  return expect.fail(`opened: ${JSON.stringify(stored).slice(0, 300)}`);
}

async function expectMetadataError(stored: Json, fileId: string, ring: Keyring = keyring): Promise<StorageMetadataError> {
  const error = await refusal(stored, fileId, ring);
  expect(error).toBeInstanceOf(StorageMetadataError);
  expect((error as StorageMetadataError).fileId).toBe(fileId);
  return error as StorageMetadataError;
}

const clone = (value: Json): Json => structuredClone(value);
const sealedOf = (stored: Json) => stored.sealed as { kek: string; key: string; iv: string; data: string };

describe('sealManifest and openManifest', () => {
  it('round trips a realistic manifest, and reports the KEK', async () => {
    const m = manifest();
    const stored = await store(m);
    expect(stored.version).toBe(SEALED_MANIFEST_VERSION);
    expect(SEALED_MANIFEST_VERSION).toBe(2);
    const opened = await openManifest(stored, keyring, 'f-0001');
    expect(opened.kekId).toBe('k1');
    // The opened manifest is of the shape the code knows: version 1.
    expect(opened.manifest).toEqual(m);
    expect(opened.manifest.version).toBe(1);
    // Also straight from the object sealManifest returns, without JSON in between.
    expect((await openManifest(await sealManifest(m, keyring), keyring, 'f-0001')).manifest).toEqual(m);
  });

  it('does not change the manifest it seals', async () => {
    const m = manifest();
    const copy = clone(m);
    await sealManifest(m, keyring);
    expect(m).toEqual(copy);
  });

  it('round trips a manifest with optional fields absent (awaiting upload, no stored object)', async () => {
    const m = manifest('f-new');
    for (const field of ['stored', 'leaseUntil', 'multipart', 'metadata', 'declaredSha256', 'uploadContentType']) delete m[field];
    m.status = 'awaiting_upload';
    m.attempts = 0;
    const stored = await store(m);
    expect(stored).not.toHaveProperty('stored');
    const { manifest: opened } = await openManifest(stored, keyring, 'f-new');
    expect(opened).toEqual(m);
    expect(opened).not.toHaveProperty('stored');
  });

  it('drops fields that are undefined, as JSON would', async () => {
    const m = manifest('f-u', { reason: undefined, leaseUntil: undefined });
    const { manifest: opened } = await openManifest(await store(m), keyring, 'f-u');
    expect(opened).toEqual(JSON.parse(JSON.stringify(m)));
    expect(Object.keys(opened)).not.toContain('reason');
    expect(Object.keys(opened)).not.toContain('leaseUntil');
  });

  it('keeps owner, filename, metadata and checksums out of the stored text', async () => {
    const m = manifest();
    const stored = await store(m);
    const text = JSON.stringify(stored);
    const secrets = [
      OWNER,
      'jane.roe',
      'example.org',
      FILENAME,
      'Jane Roe',
      'Jane',
      'Dr Rick Moe',
      'patient',
      'therapist',
      DECLARED_SHA256,
      DECLARED_SHA256.slice(0, 16),
      STORED_SHA256,
      STORED_SHA256.slice(0, 16),
      'audio/mp4',
      'application/octet-stream',
      '"owner"',
      '"filename"',
      '"metadata"',
      '"sha256"',
      '"declaredSha256"',
      '"contentType"',
    ];
    for (const secret of secrets) expect(text, secret).not.toContain(secret);
    // Nor any encoding of them (the seal's binary fields are base64url).
    for (const encoding of ['base64', 'base64url', 'hex'] as const) {
      expect(text).not.toContain(Buffer.from(OWNER).toString(encoding).slice(0, 12));
      expect(text).not.toContain(Buffer.from('Jane Roe').toString(encoding).slice(0, 8));
    }
  });

  it('keeps status, sizes, dates and the stored object description in the clear', async () => {
    const m = manifest();
    const stored = await store(m);
    const { sealed, ...clear } = stored;
    expect(clear).toEqual({
      version: 2,
      fileId: 'f-0001',
      status: 'ready',
      size: 1_234_567,
      createdAt: '2024-03-01T10:00:00.000Z',
      updatedAt: '2024-03-01T10:05:00.000Z',
      uploadExpiresAt: '2024-03-01T11:00:00.000Z',
      attempts: 1,
      multipart: { partSize: 8_388_608, uploadId: 'upload-0042' },
      leaseUntil: '2024-03-01T10:04:00.000Z',
      stored: { size: 1_234_567, storedSize: 1_234_567 + 19 * 16, encrypted: true, sealId: 'seal-7f3a', frameSize: 65_536 },
    });
    expect(Object.keys(sealed as Json).sort()).toEqual(['data', 'iv', 'kek', 'key']);
    expect(sealedOf(stored).kek).toBe('k1');
    const text = JSON.stringify(stored);
    for (const shown of ['"status":"ready"', '"size":1234567', '2024-03-01T10:00:00.000Z', '"encrypted":true', 'seal-7f3a']) {
      expect(text).toContain(shown);
    }
    // A rejected file's reason is in the clear as well.
    const rejected = await store(manifest('f-r', { status: 'rejected', reason: 'content does not match the declared SHA-256' }));
    expect(rejected.reason).toBe('content does not match the declared SHA-256');
  });

  it('seals every field not listed as clear, new ones included', async () => {
    const m = manifest('f-new-fields', {
      audio: { durationSeconds: 3121.5, codec: 'aac', title: 'Jane Roe, third session' },
      transcriptLanguage: 'de-CH',
      futureField: 'secret-future-value',
    });
    (m.stored as Json).futureStoredField = 'secret-stored-value';
    const stored = await store(m);
    const text = JSON.stringify(stored);
    // "aac" quoted: three bare letters turn up in the random base64url of the seal now and then.
    for (const secret of ['audio', 'durationSeconds', '3121.5', '"aac"', 'third session', 'transcriptLanguage', 'de-CH', 'futureField', 'secret-future-value', 'futureStoredField', 'secret-stored-value']) {
      expect(text, secret).not.toContain(secret);
    }
    expect(stored.stored).toEqual({ size: 1_234_567, storedSize: 1_234_567 + 19 * 16, encrypted: true, sealId: 'seal-7f3a', frameSize: 65_536 });
    const { manifest: opened } = await openManifest(stored, keyring, 'f-new-fields');
    expect(opened).toEqual(m);
  });

  it('seals the same manifest differently every time: a fresh key and iv', async () => {
    const m = manifest();
    const seals = await Promise.all(Array.from({ length: 5 }, () => store(m)));
    for (const field of ['key', 'iv', 'data'] as const) {
      expect(new Set(seals.map((s) => sealedOf(s)[field])).size, field).toBe(seals.length);
    }
    const clears = seals.map(({ sealed: _sealed, ...clear }) => clear);
    for (const clear of clears) expect(clear).toEqual(clears[0]);
    for (const s of seals) expect((await openManifest(s, keyring, 'f-0001')).manifest).toEqual(m);
  });

  it('opens whatever order the clear fields come back in', async () => {
    const stored = await store(manifest());
    const reversed = Object.fromEntries(Object.entries(stored).reverse()) as Json;
    reversed.stored = Object.fromEntries(Object.entries(stored.stored as Json).reverse());
    reversed.multipart = Object.fromEntries(Object.entries(stored.multipart as Json).reverse());
    expect(JSON.stringify(reversed)).not.toBe(JSON.stringify(stored));
    expect((await openManifest(reversed, keyring, 'f-0001')).manifest).toEqual(manifest());
  });
});

describe('the clear part is authenticated', () => {
  /** Every clear field, and an edit of it. */
  const edits: [string, (clear: Json) => void][] = [
    ['status', (c) => (c.status = 'processing')],
    ['status to failed', (c) => (c.status = 'failed')],
    ['size', (c) => (c.size = (c.size as number) + 1)],
    ['size as a string', (c) => (c.size = String(c.size))],
    ['createdAt', (c) => (c.createdAt = '2024-03-01T10:00:00.001Z')],
    ['updatedAt', (c) => (c.updatedAt = '2030-01-01T00:00:00.000Z')],
    ['uploadExpiresAt', (c) => (c.uploadExpiresAt = '2099-01-01T00:00:00.000Z')],
    ['leaseUntil', (c) => (c.leaseUntil = '2024-03-01T10:04:00.000Z ')],
    ['leaseUntil removed', (c) => delete c.leaseUntil],
    ['attempts', (c) => (c.attempts = 0)],
    ['reason added', (c) => (c.reason = 'operator says so')],
    ['reason null', (c) => (c.reason = null)],
    ['multipart.partSize', (c) => ((c.multipart as Json).partSize = 5_242_880)],
    ['multipart.uploadId', (c) => ((c.multipart as Json).uploadId = 'upload-0043')],
    ['multipart removed', (c) => delete c.multipart],
    ['stored.encrypted flipped', (c) => ((c.stored as Json).encrypted = false)],
    ['stored.sealId', (c) => ((c.stored as Json).sealId = 'seal-0000')],
    ['stored.sealId removed', (c) => delete (c.stored as Json).sealId],
    ['stored.size', (c) => ((c.stored as Json).size = 0)],
    ['stored.storedSize', (c) => ((c.stored as Json).storedSize = 1)],
    ['stored.frameSize', (c) => ((c.stored as Json).frameSize = 16)],
    ['stored removed', (c) => delete c.stored],
    ['stored emptied', (c) => (c.stored = {})],
    ['version', (c) => (c.version = 3)],
    ['version removed', (c) => delete c.version],
    // Added fields: a clear owner would take the file over; a clear checksum would change what is served.
    ['owner added', (c) => (c.owner = 'mallory@example.org')],
    ['filename added', (c) => (c.filename = 'x.mp3')],
    ['stored.sha256 added', (c) => ((c.stored as Json).sha256 = '00'.repeat(32))],
    ['a field added inside stored', (c) => ((c.stored as Json).extra = true)],
    ['any other field added', (c) => (c.x = 1)],
    ['a null field added', (c) => (c.note = null)],
  ];

  it.each(edits)('editing %s is a metadata error', async (_name, edit) => {
    const stored = await store(manifest());
    const edited = clone(stored);
    edit(edited);
    expect(edited).not.toEqual(stored);
    const error = await expectMetadataError(edited, 'f-0001');
    expect(error.details).toMatchObject({ why: 'tag does not verify' });
  });

  it('covers every clear field, at every depth', async () => {
    const stored = await store(manifest('f-0001', { reason: 'r' }));
    const paths: string[][] = [];
    for (const [name, value] of Object.entries(stored)) {
      if (name === 'sealed') continue;
      if (value !== null && typeof value === 'object') for (const inner of Object.keys(value)) paths.push([name, inner]);
      else paths.push([name]);
    }
    expect(paths.length).toBeGreaterThanOrEqual(16);
    for (const path of paths) {
      for (const change of ['changed', 'removed'] as const) {
        const edited = clone(stored);
        const parent = (path.length === 2 ? edited[path[0]!] : edited) as Json;
        const leaf = path.at(-1)!;
        if (change === 'removed') delete parent[leaf];
        else parent[leaf] = typeof parent[leaf] === 'number' ? (parent[leaf] as number) + 1 : typeof parent[leaf] === 'boolean' ? !parent[leaf] : `${String(parent[leaf])}x`;
        const fileId = path[0] === 'fileId' && change === 'changed' ? 'f-0001x' : 'f-0001';
        const error = await refusal(edited, fileId);
        expect(error, `${path.join('.')} ${change}`).toBeInstanceOf(StorageMetadataError);
      }
    }
  });

  it('a manifest cannot be moved to another file', async () => {
    const stored = await store(manifest('f-a'));
    // Read as another file's manifest.
    const error = await expectMetadataError(stored, 'f-b');
    expect(error.details).toMatchObject({ why: 'belongs to another file' });
    // With its fileId rewritten to match: the tag fails.
    const moved = { ...clone(stored), fileId: 'f-b' };
    expect((await expectMetadataError(moved, 'f-b')).details).toMatchObject({ why: 'tag does not verify' });
  });

  it('a sealed part swapped between two files, or two versions of one file, fails', async () => {
    const a = await store(manifest('f-a'));
    const b = await store(manifest('f-b', { owner: 'mallory@example.org' }));
    await expectMetadataError({ ...clone(b), sealed: a.sealed }, 'f-b');
    await expectMetadataError({ ...clone(a), sealed: b.sealed }, 'f-a');

    // The same file at two moments: the secret part of one cannot stand under the clear part of the other.
    const processing = await store(manifest('f-a', { status: 'processing', stored: undefined }));
    const ready = await store(manifest('f-a'));
    await expectMetadataError({ ...clone(processing), sealed: ready.sealed }, 'f-a');
    await expectMetadataError({ ...clone(ready), sealed: processing.sealed }, 'f-a');
    // Each is fine as it was.
    expect((await openManifest(processing, keyring, 'f-a')).manifest.status).toBe('processing');
    expect((await openManifest(ready, keyring, 'f-a')).manifest.status).toBe('ready');
  });
});

describe('the sealed part is authenticated', () => {
  it('any flipped byte of data, iv or key is refused, never opened', async () => {
    const stored = await store(manifest());
    let tried = 0;
    for (const field of ['data', 'iv', 'key'] as const) {
      const original = Buffer.from(sealedOf(stored)[field], 'base64url');
      for (let position = 0; position < original.length; position += 1) {
        for (const mask of [0x01, 0x80]) {
          const tampered = Buffer.from(original);
          tampered[position]! ^= mask;
          const edited = clone(stored);
          sealedOf(edited)[field] = tampered.toString('base64url');
          const error = await refusal(edited, 'f-0001');
          const known = error instanceof StorageMetadataError || error instanceof StorageFileCorruptedError;
          expect(known, `${field} byte ${position} mask ${mask}: ${String(error)}`).toBe(true);
          tried += 1;
        }
      }
    }
    expect(tried).toBeGreaterThan(2 * (40 + 12 + 100));
  });

  it('a cut, lengthened or empty field is a metadata error', async () => {
    const stored = await store(manifest());
    const s = sealedOf(stored);
    const cuts: [keyof typeof s, string][] = [
      ['data', ''],
      ['data', Buffer.from(s.data, 'base64url').subarray(0, 15).toString('base64url')],
      ['data', Buffer.from(s.data, 'base64url').subarray(0, 16).toString('base64url')],
      ['data', Buffer.from(s.data, 'base64url').subarray(1).toString('base64url')],
      ['data', Buffer.concat([Buffer.from(s.data, 'base64url'), Buffer.alloc(1)]).toString('base64url')],
      ['iv', ''],
      ['iv', Buffer.from(s.iv, 'base64url').subarray(0, 11).toString('base64url')],
      ['iv', Buffer.concat([Buffer.from(s.iv, 'base64url'), Buffer.alloc(4)]).toString('base64url')],
      ['key', ''],
      ['key', Buffer.alloc(2000).toString('base64url')],
      ['data', `${s.data}=`],
      ['data', ` ${s.data}`],
      ['iv', Buffer.from(s.iv, 'base64url').toString('hex')],
      ['key', `${s.key}!`],
    ];
    for (const [field, value] of cuts) {
      const edited = clone(stored);
      sealedOf(edited)[field] = value;
      const error = await refusal(edited, 'f-0001');
      const known = error instanceof StorageMetadataError || error instanceof StorageFileCorruptedError;
      expect(known, `${field} = ${value.slice(0, 20)}: ${String(error)}`).toBe(true);
    }
    for (const field of ['data', 'iv', 'key', 'kek'] as const) {
      for (const value of [undefined, null, 42, ['x'], {}]) {
        const edited = clone(stored);
        (edited.sealed as Json)[field] = value;
        await expectMetadataError(edited, 'f-0001');
      }
    }
  });

  it('an unknown or unreadable KEK id is a metadata error', async () => {
    const stored = await store(manifest());
    for (const kekId of ['k9', 'K1', 'k2', KMS_KEK_ID, '', 'a b', 'k1 ', '../k1']) {
      const edited = clone(stored);
      sealedOf(edited).kek = kekId;
      await expectMetadataError(edited, 'f-0001');
    }
    // Sealed under k1, read by a keyring that has retired it.
    await expectMetadataError(stored, 'f-0001', new Keyring([k2], 'k2'));
  });

  it('the key wrapped under another KEK of the keyring fails its integrity check', async () => {
    const both = new Keyring([k1, k2], 'k1');
    const stored = await store(manifest(), both);
    const edited = clone(stored);
    sealedOf(edited).kek = 'k2';
    const error = await refusal(edited, 'f-0001', both);
    expect(error).toBeInstanceOf(StorageFileCorruptedError);
  });

  it('an unsealed manifest is a metadata error', async () => {
    const stored = await store(manifest());
    const { sealed: _sealed, ...clear } = stored;
    await expectMetadataError(clear, 'f-0001');
    for (const sealed of [null, 'sealed', 1, true]) await expectMetadataError({ ...clear, sealed }, 'f-0001');
    // A manifest of version 1, all in the clear.
    const error = await expectMetadataError(manifest(), 'f-0001');
    expect(error.details).toMatchObject({ why: 'not sealed' });
  });
});

describe('keys', () => {
  it('a manifest sealed under k1 opens once k2 is active, and reports k1', async () => {
    const m = manifest();
    const stored = await store(m, new Keyring([k1], 'k1'));
    const rotated = new Keyring([k1, k2], 'k2');
    const opened = await openManifest(stored, rotated, 'f-0001');
    expect(opened.kekId).toBe('k1');
    expect(opened.manifest).toEqual(m);
    // Rewriting it seals it under k2, which alone then opens it.
    const resealed = await store(opened.manifest, rotated);
    expect(sealedOf(resealed).kek).toBe('k2');
    const again = await openManifest(resealed, new Keyring([k2], 'k2'), 'f-0001');
    expect(again).toEqual({ manifest: m, kekId: 'k2' });
    await expectMetadataError(resealed, 'f-0001', new Keyring([k1], 'k1'));
  });

  it('seals and opens under a remote (KMS) key, whose wrapped keys are longer', async () => {
    const remoteKey = randomBytes(32);
    const calls = { generateDataKey: 0, unwrap: 0 };
    const remote: RemoteKeyProvider = {
      id: KMS_KEK_ID,
      async generateDataKey() {
        calls.generateDataKey += 1;
        const dataKey = randomBytes(KEY_LENGTH);
        return { dataKey, wrappedKey: await remote.wrap(dataKey) };
      },
      async wrap(dataKey) {
        const iv = randomBytes(12);
        const c = createCipheriv('aes-256-gcm', remoteKey, iv);
        // Padded to the 184 bytes of a real KMS blob.
        return Buffer.concat([iv, c.update(dataKey), c.final(), c.getAuthTag(), Buffer.alloc(124)]);
      },
      async unwrap(wrappedKey, fileId) {
        calls.unwrap += 1;
        try {
          const d = createDecipheriv('aes-256-gcm', remoteKey, wrappedKey.subarray(0, 12));
          d.setAuthTag(wrappedKey.subarray(44, 60));
          return Buffer.concat([d.update(wrappedKey.subarray(12, 44)), d.final()]);
        } catch (cause) {
          throw new StorageFileCorruptedError('The wrapped data key fails its integrity check', { operation: 'unwrapKey', fileId, cause });
        }
      },
    };
    const ring = new Keyring([k1], KMS_KEK_ID, remote);
    const m = manifest();
    const stored = await store(m, ring);
    expect(calls.generateDataKey).toBe(1);
    expect(sealedOf(stored).kek).toBe(KMS_KEK_ID);
    expect(Buffer.from(sealedOf(stored).key, 'base64url')).toHaveLength(184);
    expect(await openManifest(stored, ring, 'f-0001')).toEqual({ manifest: m, kekId: KMS_KEK_ID });
    expect(calls.unwrap).toBe(1);
    // A keyring without the remote does not know the id.
    await expectMetadataError(stored, 'f-0001', new Keyring([k1], 'k1'));
    // A manifest sealed under k1 still opens with the remote active.
    expect((await openManifest(await store(m), ring, 'f-0001')).kekId).toBe('k1');
    expect(calls.unwrap).toBe(1);
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every depth', () => {
    const value = { b: 1, a: { d: [{ z: 1, y: { q: 2, p: 1 } }, 3], c: 'x' }, A: null, _: true };
    expect(canonicalJson(value)).toBe('{"A":null,"_":true,"a":{"c":"x","d":[{"y":{"p":1,"q":2},"z":1},3]},"b":1}');
    const reordered = { _: true, A: null, a: { c: 'x', d: [{ y: { p: 1, q: 2 }, z: 1 }, 3] }, b: 1 };
    expect(canonicalJson(reordered)).toBe(canonicalJson(value));
    expect(JSON.parse(canonicalJson(value))).toEqual(value);
  });

  it('sorts by code unit, not by locale', () => {
    expect(canonicalJson({ b: 1, B: 2, 'é': 3, e: 4, '10': 5, '9': 6 })).toBe('{"10":5,"9":6,"B":2,"b":1,"e":4,"é":3}');
  });

  it('drops undefined at every depth', () => {
    expect(canonicalJson({ a: undefined, b: { c: undefined, d: 1 }, e: 2 })).toBe('{"b":{"d":1},"e":2}');
    expect(canonicalJson({ a: undefined })).toBe('{}');
  });

  it('writes scalars and strings as JSON does', () => {
    for (const value of [0, -1, 1.5, 1e21, 'plain', 'quote " and \\ and \n and \u2028', '', null, true, false, []]) {
      expect(canonicalJson(value)).toBe(JSON.stringify(value));
    }
    expect(canonicalJson(['a', 1, { y: 2, x: 1 }])).toBe('["a",1,{"x":1,"y":2}]');
  });

  it('gives the same text before and after a JSON round trip of a manifest', () => {
    const m = manifest();
    expect(canonicalJson(JSON.parse(JSON.stringify(m)))).toBe(canonicalJson(m));
  });
});

/** A remote KEK (KMS stand-in) that counts its calls and keeps every plaintext data key it hands out. */
function countingRemote() {
  const remoteKey = randomBytes(32);
  const calls = { generateDataKey: 0, unwrap: 0 };
  const handedOut: Buffer[] = [];
  const wrap = async (dataKey: Buffer) => {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', remoteKey, iv);
    return Buffer.concat([iv, c.update(dataKey), c.final(), c.getAuthTag()]);
  };
  const remote: RemoteKeyProvider = {
    id: KMS_KEK_ID,
    async generateDataKey() {
      calls.generateDataKey += 1;
      const dataKey = randomBytes(KEY_LENGTH);
      const wrappedKey = await wrap(dataKey);
      handedOut.push(dataKey);
      return { dataKey, wrappedKey };
    },
    wrap,
    async unwrap(wrappedKey, fileId) {
      calls.unwrap += 1;
      try {
        const d = createDecipheriv('aes-256-gcm', remoteKey, wrappedKey.subarray(0, 12));
        d.setAuthTag(wrappedKey.subarray(44, 60));
        const dataKey = Buffer.concat([d.update(wrappedKey.subarray(12, 44)), d.final()]);
        handedOut.push(dataKey);
        return dataKey;
      } catch (cause) {
        throw new StorageFileCorruptedError('The wrapped data key fails its integrity check', { operation: 'unwrapKey', fileId, cause });
      }
    },
  };
  return { ring: new Keyring([k1], KMS_KEK_ID, remote), calls, handedOut };
}

describe('the documented layout of a sealed manifest', () => {
  /** Opens the sealed part with nothing but the description at the top of manifest-seal.ts. */
  async function openByHand(stored: Json, ring: Keyring): Promise<Json> {
    const { sealed: _sealed, ...clear } = stored;
    const s = sealedOf(stored);
    const dataKey = await ring.unwrap(s.kek, Buffer.from(s.key, 'base64url'));
    const data = Buffer.from(s.data, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', dataKey, Buffer.from(s.iv, 'base64url'));
    decipher.setAAD(Buffer.from(`transcribo/manifest/v2\n${canonicalJson(clear)}`, 'utf8'));
    decipher.setAuthTag(data.subarray(data.length - 16));
    return JSON.parse(Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]).toString('utf8')) as Json;
  }

  it('seals the private fields, and only those, under the AAD "transcribo/manifest/v2\\n" + canonical clear part', async () => {
    // Manifests outlive the code that wrote them: the AAD and the split are a stored format.
    expect(await openByHand(await store(manifest()), keyring)).toEqual({
      owner: OWNER,
      filename: FILENAME,
      contentType: 'audio/mp4',
      uploadContentType: 'application/octet-stream',
      extension: 'm4a',
      declaredSha256: DECLARED_SHA256,
      metadata: { patient: 'Jane Roe', therapist: 'Dr Rick Moe' },
      stored: { sha256: STORED_SHA256 },
    });
  });

  it('has no stored entry in the sealed part when every stored field is clear', async () => {
    const m = manifest('f-clear-stored');
    delete (m.stored as Json).sha256;
    const stored = await store(m);
    expect(await openByHand(stored, keyring)).not.toHaveProperty('stored');
    expect((await openManifest(stored, keyring, 'f-clear-stored')).manifest).toEqual(m);
  });
});

describe('data keys are wiped after use', () => {
  it('sealing zeroes the data key the keyring made', async () => {
    const { ring, calls, handedOut } = countingRemote();
    const stored = await store(manifest(), ring);
    expect(calls.generateDataKey).toBe(1);
    expect(handedOut[0]!.equals(Buffer.alloc(KEY_LENGTH))).toBe(true);
    expect((await openManifest(stored, ring, 'f-0001')).manifest).toEqual(manifest());
  });

  it('opening zeroes the unwrapped data key', async () => {
    const { ring, calls, handedOut } = countingRemote();
    const stored = await store(manifest(), ring);
    await openManifest(stored, ring, 'f-0001');
    expect(calls.unwrap).toBe(1);
    expect(handedOut).toHaveLength(2);
    expect(handedOut[1]!.equals(Buffer.alloc(KEY_LENGTH))).toBe(true);
  });
});

describe('malformed manifests are refused before any key is unwrapped', () => {
  async function expectUnreadable(stored: Json, why: string, calls: { unwrap: number }): Promise<void> {
    const error = await expectMetadataError(stored, 'f-0001');
    expect(error.operation).toBe('readManifest');
    expect(error.message).toBe('File manifest fails its integrity check.');
    expect(error.details).toEqual({ why });
    // A malformed manifest costs no KMS call.
    expect(calls.unwrap).toBe(0);
  }

  it('a key id that is not a usable id', async () => {
    const { ring, calls } = countingRemote();
    const stored = await store(manifest(), ring);
    for (const kekId of [42, null, true, ['kms'], {}, '', 'a b', 'k/1']) {
      const edited = clone(stored);
      (edited.sealed as Json).kek = kekId;
      await expectUnreadable(edited, 'unreadable key id', calls);
    }
  });

  it('a key, iv or data of a length the seal cannot have', async () => {
    const { ring, calls } = countingRemote();
    const stored = await store(manifest(), ring);
    const data = Buffer.from(sealedOf(stored).data, 'base64url');
    const b64 = (length: number) => randomBytes(length).toString('base64url');
    const bad: [keyof ReturnType<typeof sealedOf>, string][] = [
      ['key', ''],
      ['key', b64(1025)],
      ['key', b64(4096)],
      ['iv', ''],
      ['iv', b64(11)],
      ['iv', b64(13)],
      ['iv', b64(16)],
      ['data', ''],
      ['data', data.subarray(0, 15).toString('base64url')],
    ];
    for (const [field, value] of bad) {
      const edited = clone(stored);
      sealedOf(edited)[field] = value;
      await expectUnreadable(edited, 'unreadable seal', calls);
    }
  });

  it('but a wrapped key of up to MAX_WRAPPED_KEY_LENGTH bytes is the KEK\'s to judge', async () => {
    const { ring, calls } = countingRemote();
    const stored = await store(manifest(), ring);
    const edited = clone(stored);
    sealedOf(edited).key = randomBytes(1024).toString('base64url');
    expect(await refusal(edited, 'f-0001', ring)).toBeInstanceOf(StorageFileCorruptedError);
    expect(calls.unwrap).toBe(1);
  });

  it('a stored description that is not an object stays in the clear, and is refused when read', async () => {
    // Never sealed away, and never read back as an empty description.
    for (const value of [null, 'ready', 5]) {
      const stored = await store(manifest('f-0001', { stored: value }));
      expect(stored.stored).toBe(value);
      const error = await expectMetadataError(stored, 'f-0001');
      expect(error.details).toEqual({ why: 'unreadable stored attributes' });
    }
  });
});
