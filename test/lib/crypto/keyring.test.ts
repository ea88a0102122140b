import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { StorageFileCorruptedError, StorageMetadataError } from '../../../lib/errors/catalogue.ts';
import {
  KEY_LENGTH,
  KMS_KEK_ID,
  Keyring,
  WRAPPED_KEY_LENGTH,
  isValidKeyId,
  parseKeyList,
  type KeyEncryptionKey,
  type RemoteKeyProvider,
} from '../../../lib/crypto/keyring.ts';

/** Deterministic key material of any length, so failures replay. */
function material(label: string, length = KEY_LENGTH): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; out.length * 32 < length; i += 1) out.push(createHash('sha256').update(`${label}/${i}`).digest());
  return Buffer.concat(out).subarray(0, length);
}

function kek(id: string): KeyEncryptionKey {
  return { id, key: material(`kek/${id}`) };
}

/** The error an action throws or rejects with; fails the test if it succeeds. */
async function thrown(action: () => unknown): Promise<unknown> {
  try {
    await action();
  } catch (error) {
    return error;
  }
  return expect.fail('expected an error');
}

/**
 * A stand-in for AWS KMS: AES-256-GCM under a key of its own, a blob of iv ‖ ciphertext ‖ tag
 * (60 bytes, so not the 40 of a static wrap), counting what it is asked to do.
 */
interface FakeRemote extends RemoteKeyProvider {
  calls: { generateDataKey: number; wrap: number; unwrap: number };
  unwrapFileIds: (string | undefined)[];
  generated: Buffer[];
}

function fakeRemote(id: string = KMS_KEK_ID, label = 'remote'): FakeRemote {
  const key = material(`remote/${label}`);
  const seal = (dataKey: Buffer): Buffer => {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    return Buffer.concat([iv, cipher.update(dataKey), cipher.final(), cipher.getAuthTag()]);
  };
  const remote: FakeRemote = {
    id,
    calls: { generateDataKey: 0, wrap: 0, unwrap: 0 },
    unwrapFileIds: [],
    generated: [],
    async generateDataKey() {
      remote.calls.generateDataKey += 1;
      const dataKey = randomBytes(KEY_LENGTH);
      remote.generated.push(Buffer.from(dataKey));
      return { dataKey, wrappedKey: seal(dataKey) };
    },
    async wrap(dataKey) {
      remote.calls.wrap += 1;
      return seal(dataKey);
    },
    async unwrap(wrappedKey, fileId) {
      remote.calls.unwrap += 1;
      remote.unwrapFileIds.push(fileId);
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, wrappedKey.subarray(0, 12));
        decipher.setAuthTag(wrappedKey.subarray(wrappedKey.length - 16));
        return Buffer.concat([decipher.update(wrappedKey.subarray(12, wrappedKey.length - 16)), decipher.final()]);
      } catch (cause) {
        throw new StorageFileCorruptedError('The wrapped data key fails its integrity check', {
          operation: 'unwrapKey',
          fileId,
          details: { kekId: id },
          cause,
        });
      }
    },
  };
  return remote;
}

describe('Keyring.wrap and unwrap', () => {
  it('round trips data keys under the active key', async () => {
    const keyring = new Keyring([kek('k1'), kek('k2')], 'k1');
    expect(keyring.activeId).toBe('k1');
    for (let i = 0; i < 20; i += 1) {
      const dataKey = randomBytes(KEY_LENGTH);
      const { kekId, wrappedKey } = await keyring.wrap(dataKey);
      expect(kekId).toBe('k1');
      expect(wrappedKey).toHaveLength(WRAPPED_KEY_LENGTH);
      expect(WRAPPED_KEY_LENGTH).toBe(40);
      expect(wrappedKey.includes(dataKey)).toBe(false);
      expect(wrappedKey.subarray(0, 32).equals(dataKey)).toBe(false);
      expect(wrappedKey.subarray(8).equals(dataKey)).toBe(false);
      const unwrapped = await keyring.unwrap(kekId, wrappedKey, 'file-1');
      expect(unwrapped).toHaveLength(KEY_LENGTH);
      expect(unwrapped.equals(dataKey)).toBe(true);
    }
  });

  it('wraps with the KEK it names: another keyring with the same KEK unwraps it', async () => {
    const dataKey = material('data');
    const { wrappedKey } = await new Keyring([kek('k1')], 'k1').wrap(dataKey);
    expect((await new Keyring([kek('k0'), kek('k1')], 'k0').unwrap('k1', wrappedKey)).equals(dataKey)).toBe(true);
  });

  it('wraps different data keys differently, and one data key differently under different KEKs', async () => {
    const a = new Keyring([kek('a')], 'a');
    const b = new Keyring([{ id: 'a', key: material('another kek') }], 'a');
    const key1 = material('data-1');
    const key2 = material('data-2');
    expect((await a.wrap(key1)).wrappedKey.equals((await a.wrap(key2)).wrappedKey)).toBe(false);
    expect((await a.wrap(key1)).wrappedKey.equals((await b.wrap(key1)).wrappedKey)).toBe(false);
  });

  it('refuses to wrap a data key of the wrong length, by rejecting', async () => {
    const keyring = new Keyring([kek('k1')], 'k1');
    for (const length of [0, 16, 31, 33, 40, 64]) {
      await expect(keyring.wrap(material('short', length))).rejects.toThrow('a data key must be 32 bytes');
    }
  });

  it('copies the KEKs: wiping the caller buffers changes nothing', async () => {
    const key = Buffer.from(material('wiped'));
    const keyring = new Keyring([{ id: 'k1', key }], 'k1');
    const dataKey = material('data');
    const before = (await keyring.wrap(dataKey)).wrappedKey;
    key.fill(0);
    const after = (await keyring.wrap(dataKey)).wrappedKey;
    expect(after.equals(before)).toBe(true);
    expect((await keyring.unwrap('k1', before)).equals(dataKey)).toBe(true);
    // A keyring built on the wiped buffer really is a different key.
    await expect(new Keyring([{ id: 'k1', key }], 'k1').unwrap('k1', before)).rejects.toThrow(StorageFileCorruptedError);
  });

  it('does not show its key material when inspected or serialised', () => {
    const k = kek('secret');
    const keyring = new Keyring([k], 'secret');
    const shown = `${inspect(keyring, { depth: 10, showHidden: true })} ${JSON.stringify(keyring)} ${String(keyring)}`;
    for (const encoding of ['hex', 'base64', 'base64url'] as const) {
      expect(shown).not.toContain(k.key.toString(encoding).slice(0, 16));
    }
  });

  it('lists the ids it can unwrap', () => {
    expect(new Keyring([kek('k1'), kek('k2')], 'k2').ids).toEqual(['k1', 'k2']);
    expect(new Keyring([kek('k1')], 'k1', fakeRemote()).ids).toEqual(['k1', KMS_KEK_ID]);
    expect(new Keyring([], KMS_KEK_ID, fakeRemote()).ids).toEqual([KMS_KEK_ID]);
  });
});

describe('rotation', () => {
  const k1 = kek('2023');
  const k2 = kek('2024');
  const k3 = kek('2025');

  it('older files still unwrap once a new key is active, and new files use the new key', async () => {
    const before = new Keyring([k1], '2023');
    const dataKey = material('old file');
    const old = await before.wrap(dataKey);
    expect(old.kekId).toBe('2023');

    const rotated = new Keyring([k1, k2], '2024');
    expect(rotated.activeId).toBe('2024');
    expect((await rotated.unwrap(old.kekId, old.wrappedKey)).equals(dataKey)).toBe(true);
    const newKey = material('new file');
    const fresh = await rotated.wrap(newKey);
    expect(fresh.kekId).toBe('2024');
    expect(fresh.wrappedKey.equals((await new Keyring([k1, k2], '2023').wrap(newKey)).wrappedKey)).toBe(false);
    expect((await rotated.unwrap('2024', fresh.wrappedKey)).equals(newKey)).toBe(true);
    // The old keyring cannot read new files: it has never heard of the new KEK.
    await expect(before.unwrap(fresh.kekId, fresh.wrappedKey)).rejects.toThrow(StorageMetadataError);

    const again = new Keyring([k3, k2, k1], '2025');
    expect((await again.wrap(newKey)).kekId).toBe('2025');
    expect((await again.unwrap(old.kekId, old.wrappedKey)).equals(dataKey)).toBe(true);
    expect((await again.unwrap(fresh.kekId, fresh.wrappedKey)).equals(newKey)).toBe(true);
  });

  it('a wrapped key presented under another KEK id fails its integrity check', async () => {
    const keyring = new Keyring([k1, k2], '2024');
    const { wrappedKey } = await keyring.wrap(material('data'));
    const error = await thrown(() => keyring.unwrap('2023', wrappedKey, 'file-x'));
    expect(error).toBeInstanceOf(StorageFileCorruptedError);
    expect((error as StorageFileCorruptedError).fileId).toBe('file-x');
  });

  it('a retired KEK is an unknown KEK', async () => {
    const { kekId, wrappedKey } = await new Keyring([k1], '2023').wrap(material('data'));
    const error = await thrown(() => new Keyring([k2, k3], '2025').unwrap(kekId, wrappedKey, 'file-old'));
    expect(error).toBeInstanceOf(StorageMetadataError);
    expect(error).toMatchObject({ fileId: 'file-old', details: { kekId: '2023' } });
  });
});

describe('unwrap failures', () => {
  const keyring = new Keyring([kek('k1'), kek('k2')], 'k1');
  const dataKey = material('data');
  let wrappedKey: Buffer;
  beforeAll(async () => {
    ({ wrappedKey } = await keyring.wrap(dataKey));
  });

  it.each(['k3', 'K1', 'k1 ', '', 'k1x', KMS_KEK_ID])('an unknown KEK id %j is a metadata error', async (id) => {
    const error = await thrown(() => keyring.unwrap(id, wrappedKey, 'file-7'));
    expect(error).toBeInstanceOf(StorageMetadataError);
    expect(error).not.toBeInstanceOf(StorageFileCorruptedError);
    expect((error as StorageMetadataError).fileId).toBe('file-7');
  });

  it('any flipped bit of the wrapped key is corruption', async () => {
    for (let position = 0; position < WRAPPED_KEY_LENGTH; position += 1) {
      for (const mask of [0x01, 0x80]) {
        const tampered = Buffer.from(wrappedKey);
        tampered[position]! ^= mask;
        const error = await thrown(() => keyring.unwrap('k1', tampered, 'file-9'));
        expect(error, `byte ${position} mask ${mask}`).toBeInstanceOf(StorageFileCorruptedError);
        expect((error as StorageFileCorruptedError).fileId).toBe('file-9');
      }
    }
  });

  it('a wrapped key of the wrong length is corruption', async () => {
    const cuts = [
      Buffer.alloc(0),
      wrappedKey.subarray(0, 8),
      wrappedKey.subarray(0, 32),
      wrappedKey.subarray(0, 39),
      Buffer.concat([wrappedKey, Buffer.alloc(1)]),
      Buffer.concat([wrappedKey, Buffer.alloc(8)]),
    ];
    for (const cut of cuts) await expect(keyring.unwrap('k1', cut), `${cut.length} bytes`).rejects.toThrow(StorageFileCorruptedError);
  });

  it('a wrapped key of zeros or of random bytes is corruption', async () => {
    for (const bogus of [Buffer.alloc(40), material('random', 40), Buffer.alloc(40, 0xa6)]) {
      await expect(keyring.unwrap('k1', bogus)).rejects.toThrow(StorageFileCorruptedError);
    }
  });

  it('leaves the good wrapped key usable after failures', async () => {
    expect((await keyring.unwrap('k1', wrappedKey)).equals(dataKey)).toBe(true);
  });
});

describe('Keyring constructor', () => {
  it('refuses an active id that names no key', () => {
    expect(() => new Keyring([kek('k1')], 'k2')).toThrow(/active/);
    expect(() => new Keyring([], 'k1')).toThrow(/active/);
    expect(() => new Keyring([kek('k1')], '')).toThrow();
  });

  it.each([0, 1, 16, 24, 31, 33, 64])('refuses a %i-byte key', async (length) => {
    const key = material('bad length', length);
    const error = await thrown(() => new Keyring([kek('k0'), { id: 'k1', key }], 'k0'));
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain('k1');
    if (length > 0) expect((error as Error).message).not.toContain(key.toString('hex').slice(0, 8));
  });

  it('refuses duplicate ids, even with the same key', () => {
    expect(() => new Keyring([kek('k1'), kek('k2'), kek('k1')], 'k2')).toThrow(/more than once/);
    expect(() => new Keyring([kek('k1'), { id: 'k1', key: material('other') }], 'k1')).toThrow(/more than once/);
  });

  it.each(['', ' ', 'k 1', 'k:1', 'k,1', 'k.1', 'k/1', 'clé', 'k1\n', '\tk1'])('refuses the id %j', (id) => {
    expect(() => new Keyring([kek('ok'), { id, key: material('x') }], 'ok')).toThrow();
  });

  it('accepts ids of letters, digits, _ and -', async () => {
    const ids = ['k1', 'K', '2024-01', 'a_b', '-', '_', 'x'.repeat(200)];
    const keyring = new Keyring(ids.map(kek), '2024-01');
    for (const id of ids) {
      expect(isValidKeyId(id)).toBe(true);
      const dataKey = material(`for ${id}`);
      const { wrappedKey } = await new Keyring([kek(id)], id).wrap(dataKey);
      expect((await keyring.unwrap(id, wrappedKey)).equals(dataKey)).toBe(true);
    }
    for (const id of ['', 'a b', 'a:b', 'a.b', 'é', 'a\n']) expect(isValidKeyId(id)).toBe(false);
  });
});

describe('newDataKey', () => {
  it('makes fresh 32-byte keys, wrapped under the active KEK', async () => {
    const keyring = new Keyring([kek('k1'), kek('k2')], 'k2');
    const made = await Promise.all(Array.from({ length: 50 }, () => keyring.newDataKey()));
    for (const { dataKey, kekId, wrappedKey } of made) {
      expect(dataKey).toHaveLength(KEY_LENGTH);
      expect(kekId).toBe('k2');
      expect(wrappedKey).toHaveLength(WRAPPED_KEY_LENGTH);
      expect(wrappedKey.includes(dataKey)).toBe(false);
      expect((await keyring.unwrap(kekId, wrappedKey)).equals(dataKey)).toBe(true);
      // Wrapped with the active KEK itself: a keyring holding only that KEK opens it, the other does not.
      expect((await new Keyring([kek('k2')], 'k2').unwrap(kekId, wrappedKey)).equals(dataKey)).toBe(true);
      await expect(keyring.unwrap('k1', wrappedKey)).rejects.toThrow(StorageFileCorruptedError);
    }
    expect(new Set(made.map((m) => m.dataKey.toString('hex'))).size).toBe(made.length);
    expect(new Set(made.map((m) => m.wrappedKey.toString('hex'))).size).toBe(made.length);
  });

  it('hands out a key the caller may wipe without harm to the next one', async () => {
    const keyring = new Keyring([kek('k1')], 'k1');
    const first = await keyring.newDataKey();
    const copy = Buffer.from(first.dataKey);
    first.dataKey.fill(0);
    expect((await keyring.unwrap(first.kekId, first.wrappedKey)).equals(copy)).toBe(true);
    const second = await keyring.newDataKey();
    expect(second.dataKey.equals(Buffer.alloc(KEY_LENGTH))).toBe(false);
    expect(second.dataKey.equals(copy)).toBe(false);
  });
});

describe('rewrap', () => {
  const k1 = kek('2023');
  const k2 = kek('2024');

  it('is undefined for a key already under the active KEK', async () => {
    const keyring = new Keyring([k1, k2], '2024');
    const wrapped = await keyring.wrap(material('data'));
    expect(await keyring.rewrap(wrapped)).toBeUndefined();
    expect(await keyring.rewrap(wrapped, 'file-1')).toBeUndefined();
  });

  it('wraps the same data key under the new active KEK', async () => {
    const dataKey = material('rotated data');
    const old = await new Keyring([k1], '2023').wrap(dataKey);
    const rotated = new Keyring([k1, k2], '2024');
    const fresh = await rotated.rewrap(old, 'file-r');
    expect(fresh).toBeDefined();
    expect(fresh!.kekId).toBe('2024');
    expect(fresh!.wrappedKey).toHaveLength(WRAPPED_KEY_LENGTH);
    expect(fresh!.wrappedKey.equals(old.wrappedKey)).toBe(false);
    // The new KEK alone opens it, to the very same data key.
    expect((await new Keyring([k2], '2024').unwrap(fresh!.kekId, fresh!.wrappedKey)).equals(dataKey)).toBe(true);
    expect(await rotated.rewrap(fresh!)).toBeUndefined();
  });

  it('an unknown KEK id is a metadata error', async () => {
    const old = await new Keyring([k1], '2023').wrap(material('data'));
    const error = await thrown(() => new Keyring([k2], '2024').rewrap(old, 'file-gone'));
    expect(error).toBeInstanceOf(StorageMetadataError);
    expect(error).toMatchObject({ fileId: 'file-gone', details: { kekId: '2023' } });
  });

  it('a tampered wrapped key is corruption, not a re-wrap of a bogus key', async () => {
    const old = await new Keyring([k1], '2023').wrap(material('data'));
    const tampered = Buffer.from(old.wrappedKey);
    tampered[3]! ^= 0x10;
    const error = await thrown(() => new Keyring([k1, k2], '2024').rewrap({ kekId: '2023', wrappedKey: tampered }, 'file-t'));
    expect(error).toBeInstanceOf(StorageFileCorruptedError);
    expect((error as StorageFileCorruptedError).fileId).toBe('file-t');
  });
});

describe('a remote key provider (KMS)', () => {
  const k1 = kek('k1');

  it('when active, makes data keys with its generateDataKey and wraps with its wrap', async () => {
    const remote = fakeRemote();
    const keyring = new Keyring([k1], KMS_KEK_ID, remote);
    expect(keyring.activeId).toBe(KMS_KEK_ID);

    const made = await keyring.newDataKey();
    expect(remote.calls).toEqual({ generateDataKey: 1, wrap: 0, unwrap: 0 });
    expect(made.kekId).toBe(KMS_KEK_ID);
    expect(made.dataKey.equals(remote.generated[0]!)).toBe(true);
    expect(made.wrappedKey).toHaveLength(60);
    expect((await keyring.unwrap(made.kekId, made.wrappedKey, 'file-r1')).equals(made.dataKey)).toBe(true);
    expect(remote.calls.unwrap).toBe(1);
    expect(remote.unwrapFileIds).toEqual(['file-r1']);

    const dataKey = material('remote data');
    const wrapped = await keyring.wrap(dataKey);
    expect(remote.calls).toEqual({ generateDataKey: 1, wrap: 1, unwrap: 1 });
    expect(wrapped.kekId).toBe(KMS_KEK_ID);
    expect(wrapped.wrappedKey.includes(dataKey)).toBe(false);
    expect((await keyring.unwrap(KMS_KEK_ID, wrapped.wrappedKey)).equals(dataKey)).toBe(true);
    // The wrapped key is the remote's own: it opens it without the keyring.
    expect((await remote.unwrap(wrapped.wrappedKey)).equals(dataKey)).toBe(true);
  });

  it('still refuses a data key of the wrong length before asking the remote', async () => {
    const remote = fakeRemote();
    const keyring = new Keyring([], KMS_KEK_ID, remote);
    for (const length of [0, 16, 31, 33, 64]) await expect(keyring.wrap(material('short', length))).rejects.toThrow('a data key must be 32 bytes');
    expect(remote.calls.wrap).toBe(0);
  });

  it('unwraps its id with the remote and static ids with the static keys', async () => {
    const remote = fakeRemote();
    const dataKey = material('static data');
    const staticWrapped = await new Keyring([k1], 'k1').wrap(dataKey);
    for (const activeId of ['k1', KMS_KEK_ID]) {
      const keyring = new Keyring([k1], activeId, remote);
      const before = { ...remote.calls };
      expect((await keyring.unwrap('k1', staticWrapped.wrappedKey, 'file-s')).equals(dataKey)).toBe(true);
      expect(remote.calls).toEqual(before);
      // A static key's 40 bytes presented as the remote's are the remote's to refuse.
      await expect(keyring.unwrap(KMS_KEK_ID, staticWrapped.wrappedKey, 'file-s')).rejects.toThrow(StorageFileCorruptedError);
      expect(remote.calls.unwrap).toBe(before.unwrap + 1);
    }
  });

  it('when not active, is not asked to make or wrap keys, but still unwraps its own', async () => {
    const remote = fakeRemote();
    const old = await new Keyring([], KMS_KEK_ID, remote).newDataKey();
    const keyring = new Keyring([k1], 'k1', remote);
    const before = { ...remote.calls };
    const made = await keyring.newDataKey();
    const wrapped = await keyring.wrap(material('x'));
    expect(made.kekId).toBe('k1');
    expect(made.wrappedKey).toHaveLength(WRAPPED_KEY_LENGTH);
    expect(wrapped.kekId).toBe('k1');
    expect(remote.calls).toEqual(before);
    expect((await keyring.unwrap(KMS_KEK_ID, old.wrappedKey)).equals(old.dataKey)).toBe(true);
    expect(remote.calls.unwrap).toBe(before.unwrap + 1);
  });

  it('a remote under another id is asked for that id only', async () => {
    const remote = fakeRemote('vault', 'vault');
    const keyring = new Keyring([k1], 'vault', remote);
    const made = await keyring.newDataKey();
    expect(made.kekId).toBe('vault');
    expect((await keyring.unwrap('vault', made.wrappedKey)).equals(made.dataKey)).toBe(true);
    await expect(keyring.unwrap(KMS_KEK_ID, made.wrappedKey)).rejects.toThrow(StorageMetadataError);
    expect(remote.calls.unwrap).toBe(1);
  });

  it('a tampered remote wrapped key is corruption, with the file named', async () => {
    const remote = fakeRemote();
    const keyring = new Keyring([k1], KMS_KEK_ID, remote);
    const { wrappedKey } = await keyring.newDataKey();
    for (const position of [0, 11, 12, 30, wrappedKey.length - 1]) {
      const tampered = Buffer.from(wrappedKey);
      tampered[position]! ^= 0x01;
      const error = await thrown(() => keyring.unwrap(KMS_KEK_ID, tampered, 'file-k'));
      expect(error, `byte ${position}`).toBeInstanceOf(StorageFileCorruptedError);
      expect((error as StorageFileCorruptedError).fileId).toBe('file-k');
    }
  });

  it('rewraps static keys under the remote, and remote keys under a static key', async () => {
    const remote = fakeRemote();
    const dataKey = material('moving data');
    const staticWrapped = await new Keyring([k1], 'k1').wrap(dataKey);

    const toRemote = new Keyring([k1], KMS_KEK_ID, remote);
    const underRemote = await toRemote.rewrap(staticWrapped, 'file-m');
    expect(underRemote?.kekId).toBe(KMS_KEK_ID);
    expect(remote.calls.wrap).toBe(1);
    expect((await new Keyring([], KMS_KEK_ID, remote).unwrap(KMS_KEK_ID, underRemote!.wrappedKey)).equals(dataKey)).toBe(true);
    expect(await toRemote.rewrap(underRemote!)).toBeUndefined();

    const back = await new Keyring([k1], 'k1', remote).rewrap(underRemote!, 'file-m');
    expect(back?.kekId).toBe('k1');
    expect(back!.wrappedKey).toHaveLength(WRAPPED_KEY_LENGTH);
    expect((await new Keyring([k1], 'k1').unwrap('k1', back!.wrappedKey)).equals(dataKey)).toBe(true);
  });

  it('refuses a static key with the remote id', () => {
    expect(() => new Keyring([{ id: KMS_KEK_ID, key: material('static kms') }], KMS_KEK_ID, fakeRemote())).toThrow(/more than once/);
    expect(() => new Keyring([k1, { id: KMS_KEK_ID, key: material('static kms') }], 'k1', fakeRemote())).toThrow(/more than once/);
    expect(() => new Keyring([k1], 'k1', fakeRemote('k1'))).toThrow(/more than once/);
    // Without a remote, 'kms' is just another static id.
    expect(new Keyring([{ id: KMS_KEK_ID, key: material('static kms') }], KMS_KEK_ID).activeId).toBe(KMS_KEK_ID);
  });

  it('refuses an active id that names neither a static key nor the remote', () => {
    expect(() => new Keyring([k1], 'k2', fakeRemote())).toThrow(/active/);
    expect(() => new Keyring([], 'k1', fakeRemote())).toThrow(/active/);
    expect(() => new Keyring([k1], KMS_KEK_ID)).toThrow(/active/);
    expect(() => new Keyring([k1], 'vault', fakeRemote())).toThrow(/active/);
  });
});

describe('parseKeyList', () => {
  // Bytes picked so that the standard encoding has both '+' and '/', and a last character
  // with bits to spare.
  const tricky = Buffer.from(Array.from({ length: 32 }, (_, i) => (i % 3 === 0 ? 0xfb : i % 3 === 1 ? 0xff : 0xbf)));
  const plain = material('plain');

  it('has a key whose encodings really differ', () => {
    expect(tricky.toString('base64')).toMatch(/\+/);
    expect(tricky.toString('base64')).toMatch(/\//);
    expect(tricky.toString('base64url')).not.toMatch(/[+/=]/);
  });

  it('reads standard base64, with and without padding', () => {
    const padded = tricky.toString('base64');
    expect(padded.endsWith('=')).toBe(true);
    for (const text of [padded, padded.replace(/=+$/, '')]) {
      const keys = parseKeyList(`k1:${text}`);
      expect(keys).toHaveLength(1);
      expect(keys[0]!.id).toBe('k1');
      expect(keys[0]!.key.equals(tricky)).toBe(true);
    }
  });

  it('reads url-safe base64, with and without padding', () => {
    const url = tricky.toString('base64url');
    for (const text of [url, `${url}=`]) {
      const [entry] = parseKeyList(`k-2:${text}`);
      expect(entry!.id).toBe('k-2');
      expect(entry!.key.equals(tricky)).toBe(true);
    }
  });

  it('reads several entries in order, with whitespace around entries, ids and keys', () => {
    const spec = ` a : ${tricky.toString('base64')} ,\n\tb_2:${plain.toString('base64url')}\n, c:${plain.toString('base64')}   `;
    const keys = parseKeyList(spec);
    expect(keys.map((k) => k.id)).toEqual(['a', 'b_2', 'c']);
    expect(keys[0]!.key.equals(tricky)).toBe(true);
    expect(keys[1]!.key.equals(plain)).toBe(true);
    expect(keys[2]!.key.equals(plain)).toBe(true);
    for (const k of keys) expect(k.key).toHaveLength(KEY_LENGTH);
  });

  it('gives keys a Keyring takes', async () => {
    const keys = parseKeyList(`old:${plain.toString('base64')},new:${tricky.toString('base64url')}`);
    const keyring = new Keyring(keys, 'new');
    const dataKey = material('data');
    const { kekId, wrappedKey } = await keyring.wrap(dataKey);
    expect(kekId).toBe('new');
    expect((await new Keyring([{ id: 'new', key: tricky }], 'new').unwrap(kekId, wrappedKey)).equals(dataKey)).toBe(true);
  });

  // Every secret below is something that stands after a colon, or an entry that may be a bare key.
  const secret = material('secret');
  const secretStd = secret.toString('base64');
  const secretUrl = secret.toString('base64url');
  const strayBits = (() => {
    // Same bytes, but the last character carries stray low bits.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const unpadded = secretStd.replace(/=+$/, '');
    return unpadded.slice(0, -1) + alphabet[alphabet.indexOf(unpadded.at(-1)!) | 1];
  })();
  const short = material('short', 31).toString('base64');
  const long = material('long', 33).toString('base64');
  const hexKey = secret.toString('hex');

  const malformed: [string, string, string[]][] = [
    ['an empty list', '', []],
    ['a list of blanks', '  \n ', []],
    ['an empty entry', `k1:${secretStd},,k2:${secretUrl}`, [secretStd, secretUrl]],
    ['a trailing comma', `k1:${secretStd},`, [secretStd]],
    ['an entry without a colon', secretStd, [secretStd]],
    ['an entry without a colon after a good one', `k1:${secretUrl},${secretStd}`, [secretStd, secretUrl]],
    ['an empty id', `:${secretStd}`, [secretStd]],
    ['an id with a space', `k 1:${secretStd}`, [secretStd]],
    ['an id with a dot', `k.1:${secretStd}`, [secretStd]],
    ['an empty key', 'k1:', []],
    ['a blank key', 'k1:   ', []],
    ['a 31-byte key', `k1:${short}`, [short]],
    ['a 33-byte key', `k1:${long}`, [long]],
    ['a hex key', `k1:${hexKey}`, [hexKey]],
    ['a key with double padding', `k1:${secretStd.replace(/=$/, '')}==`, [secretStd]],
    ['a key with an invalid character', `k1:${secretStd.slice(0, 20)}!${secretStd.slice(21)}`, [secretStd]],
    ['a key with a space inside', `k1:${secretStd.slice(0, 20)} ${secretStd.slice(20)}`, [secretStd]],
    ['a key with stray low bits', `k1:${strayBits}`, [strayBits]],
    ['a second colon', `k1:${secretStd}:x`, [secretStd]],
    ['a duplicate id', `k1:${secretStd},k2:${secretUrl},k1:${material('third').toString('base64')}`, [secretStd, secretUrl, material('third').toString('base64')]],
    ['a duplicate id with the same key', `k1:${secretStd}, k1 :${secretStd}`, [secretStd]],
  ];

  it.each(malformed)(
    'refuses %s without quoting key material',
    async (_name, spec, secrets) => {
      const error = await thrown(() => parseKeyList(spec));
      expect(error).toBeInstanceOf(Error);
      const message = (error as Error).message;
      expect(message.length).toBeGreaterThan(0);
      for (const text of secrets) {
        const bare = text.replace(/=+$/, '');
        expect(message).not.toContain(bare);
        // Not even a part of it: no 8 characters in a row.
        for (let i = 0; i + 8 <= bare.length; i += 1) expect(message).not.toContain(bare.slice(i, i + 8));
      }
    },
  );

  it('names a bad entry by its id or position, never by its key', () => {
    expect(() => parseKeyList(`good:${secretStd},bad:${short}`)).toThrow(/"bad"/);
    expect(() => parseKeyList(`good:${secretStd},${short}`)).toThrow(/entry 2/);
    expect(() => parseKeyList(`good:${secretStd},b@d:${secretUrl}`)).toThrow(/entry 2/);
    expect(() => parseKeyList(`good:${secretStd},good:${secretUrl}`)).toThrow(/"good"/);
  });
});

describe('what operators read: errors of the keyring', () => {
  it('names a key with an unusable id by its position', () => {
    // The id itself cannot name it: it may be empty, or be the start of a pasted secret.
    expect(() => new Keyring([kek('ok'), { id: 'k 1', key: material('x') }], 'ok')).toThrow(/^key 2: id must be made of letters/);
    expect(() => new Keyring([{ id: '', key: material('x') }], 'ok')).toThrow(/^key 1: /);
  });

  it('an unknown KEK: a metadata error of the unwrapKey step naming the KEK id', async () => {
    const error = await thrown(() => new Keyring([kek('k1')], 'k1').unwrap('k0', Buffer.alloc(WRAPPED_KEY_LENGTH), 'file-u'));
    expect(error).toBeInstanceOf(StorageMetadataError);
    expect(error).toMatchObject({ operation: 'unwrapKey', fileId: 'file-u', details: { kekId: 'k0' } });
    expect((error as Error).message).toMatch(/unknown key-encryption key/);
  });

  it('a wrapped key that fails its check: corruption of the unwrapKey step naming the KEK id', async () => {
    const keyring = new Keyring([kek('k1')], 'k1');
    for (const wrapped of [Buffer.alloc(WRAPPED_KEY_LENGTH), Buffer.alloc(8)]) {
      const error = await thrown(() => keyring.unwrap('k1', wrapped, 'file-c'));
      expect(error).toBeInstanceOf(StorageFileCorruptedError);
      expect(error).toMatchObject({ operation: 'unwrapKey', fileId: 'file-c', details: { kekId: 'k1' } });
      expect((error as Error).message).toMatch(/fails its integrity check/);
    }
  });
});

describe('rewrap wipes the data key it handled', () => {
  it('zeroes the unwrapped data key once it is wrapped again', async () => {
    // The remote hands over a buffer the test keeps: after rotation it must hold nothing.
    const remote = fakeRemote();
    const handed: Buffer[] = [];
    const unwrap = remote.unwrap.bind(remote);
    remote.unwrap = async (wrappedKey, fileId) => {
      const dataKey = await unwrap(wrappedKey, fileId);
      handed.push(dataKey);
      return dataKey;
    };
    const { dataKey, wrappedKey } = await new Keyring([], KMS_KEK_ID, remote).newDataKey();
    const copy = Buffer.from(dataKey);
    const fresh = await new Keyring([kek('k1')], 'k1', remote).rewrap({ kekId: KMS_KEK_ID, wrappedKey }, 'file-w');
    expect(handed).toHaveLength(1);
    expect(handed[0]!.equals(Buffer.alloc(KEY_LENGTH))).toBe(true);
    expect((await new Keyring([kek('k1')], 'k1').unwrap('k1', fresh!.wrappedKey)).equals(copy)).toBe(true);
  });
});

describe('parseKeyList messages (shown after STORAGE_ENCRYPTION_KEYS:)', () => {
  const good = material('good').toString('base64url');

  it.each([
    ['an empty list', '', /^no key given \(expected "id:base64key,\.\.\."\)$/],
    ['a list of blanks', ' \t\n ', /^no key given/],
    ['a leading comma', `,k1:${good}`, /^entry 1 is empty$/],
    ['a blank entry between two', `k1:${good}, \t ,k2:${good}`, /^entry 2 is empty$/],
    ['a trailing comma', `k1:${good},`, /^entry 2 is empty$/],
    ['a bare url-safe key', good, /^entry 1 is not of the form id:base64key$/],
    ['a bare key after a good entry', `k1:${good},${good}`, /^entry 2 is not of the form id:base64key$/],
    ['an empty id', `:${good}`, /^entry 1: the key id is missing/],
  ])('%s', (_name, spec, message) => {
    expect(() => parseKeyList(spec)).toThrow(message);
  });
});
