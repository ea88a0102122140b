import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { StorageFileCorruptedError, StorageMetadataError } from '../../../lib/errors/catalogue.ts';
import {
  KEY_LENGTH,
  Keyring,
  WRAPPED_KEY_LENGTH,
  generateDataKey,
  isValidKeyId,
  parseKeyList,
  type KeyEncryptionKey,
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

function thrown(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  return expect.fail('expected an error');
}

describe('Keyring.wrap and unwrap', () => {
  it('round trips data keys under the active key', () => {
    const keyring = new Keyring([kek('k1'), kek('k2')], 'k1');
    expect(keyring.activeId).toBe('k1');
    for (let i = 0; i < 20; i += 1) {
      const dataKey = generateDataKey();
      const { kekId, wrappedKey } = keyring.wrap(dataKey);
      expect(kekId).toBe('k1');
      expect(wrappedKey).toHaveLength(WRAPPED_KEY_LENGTH);
      expect(WRAPPED_KEY_LENGTH).toBe(40);
      expect(wrappedKey.includes(dataKey)).toBe(false);
      expect(wrappedKey.subarray(0, 32).equals(dataKey)).toBe(false);
      expect(wrappedKey.subarray(8).equals(dataKey)).toBe(false);
      const unwrapped = keyring.unwrap(kekId, wrappedKey, 'file-1');
      expect(unwrapped).toHaveLength(KEY_LENGTH);
      expect(unwrapped.equals(dataKey)).toBe(true);
    }
  });

  it('wraps with the KEK it names: another keyring with the same KEK unwraps it', () => {
    const dataKey = material('data');
    const { wrappedKey } = new Keyring([kek('k1')], 'k1').wrap(dataKey);
    expect(new Keyring([kek('k0'), kek('k1')], 'k0').unwrap('k1', wrappedKey).equals(dataKey)).toBe(true);
  });

  it('wraps different data keys differently, and one data key differently under different KEKs', () => {
    const a = new Keyring([kek('a')], 'a');
    const b = new Keyring([{ id: 'a', key: material('another kek') }], 'a');
    const key1 = material('data-1');
    const key2 = material('data-2');
    expect(a.wrap(key1).wrappedKey.equals(a.wrap(key2).wrappedKey)).toBe(false);
    expect(a.wrap(key1).wrappedKey.equals(b.wrap(key1).wrappedKey)).toBe(false);
  });

  it('refuses to wrap a data key of the wrong length', () => {
    const keyring = new Keyring([kek('k1')], 'k1');
    for (const length of [0, 16, 31, 33, 40, 64]) {
      expect(() => keyring.wrap(material('short', length))).toThrow();
    }
  });

  it('copies the KEKs: wiping the caller buffers changes nothing', () => {
    const key = Buffer.from(material('wiped'));
    const keyring = new Keyring([{ id: 'k1', key }], 'k1');
    const dataKey = material('data');
    const before = keyring.wrap(dataKey).wrappedKey;
    key.fill(0);
    const after = keyring.wrap(dataKey).wrappedKey;
    expect(after.equals(before)).toBe(true);
    expect(keyring.unwrap('k1', before).equals(dataKey)).toBe(true);
    // A keyring built on the wiped buffer really is a different key.
    expect(() => new Keyring([{ id: 'k1', key }], 'k1').unwrap('k1', before)).toThrow(StorageFileCorruptedError);
  });

  it('does not show its key material when inspected or serialised', () => {
    const k = kek('secret');
    const keyring = new Keyring([k], 'secret');
    const shown = `${inspect(keyring, { depth: 10, showHidden: true })} ${JSON.stringify(keyring)} ${String(keyring)}`;
    for (const encoding of ['hex', 'base64', 'base64url'] as const) {
      expect(shown).not.toContain(k.key.toString(encoding).slice(0, 16));
    }
  });
});

describe('rotation', () => {
  const k1 = kek('2023');
  const k2 = kek('2024');
  const k3 = kek('2025');

  it('older files still unwrap once a new key is active, and new files use the new key', () => {
    const before = new Keyring([k1], '2023');
    const dataKey = material('old file');
    const old = before.wrap(dataKey);
    expect(old.kekId).toBe('2023');

    const rotated = new Keyring([k1, k2], '2024');
    expect(rotated.activeId).toBe('2024');
    expect(rotated.unwrap(old.kekId, old.wrappedKey).equals(dataKey)).toBe(true);
    const newKey = material('new file');
    const fresh = rotated.wrap(newKey);
    expect(fresh.kekId).toBe('2024');
    expect(fresh.wrappedKey.equals(new Keyring([k1, k2], '2023').wrap(newKey).wrappedKey)).toBe(false);
    expect(rotated.unwrap('2024', fresh.wrappedKey).equals(newKey)).toBe(true);
    // The old keyring cannot read new files: it has never heard of the new KEK.
    expect(() => before.unwrap(fresh.kekId, fresh.wrappedKey)).toThrow(StorageMetadataError);

    const again = new Keyring([k3, k2, k1], '2025');
    expect(again.wrap(newKey).kekId).toBe('2025');
    expect(again.unwrap(old.kekId, old.wrappedKey).equals(dataKey)).toBe(true);
    expect(again.unwrap(fresh.kekId, fresh.wrappedKey).equals(newKey)).toBe(true);
  });

  it('a wrapped key presented under another KEK id fails its integrity check', () => {
    const keyring = new Keyring([k1, k2], '2024');
    const { wrappedKey } = keyring.wrap(material('data'));
    const error = thrown(() => keyring.unwrap('2023', wrappedKey, 'file-x'));
    expect(error).toBeInstanceOf(StorageFileCorruptedError);
    expect((error as StorageFileCorruptedError).fileId).toBe('file-x');
  });

  it('a retired KEK is an unknown KEK', () => {
    const { kekId, wrappedKey } = new Keyring([k1], '2023').wrap(material('data'));
    const error = thrown(() => new Keyring([k2, k3], '2025').unwrap(kekId, wrappedKey, 'file-old'));
    expect(error).toBeInstanceOf(StorageMetadataError);
    expect(error).toMatchObject({ fileId: 'file-old', details: { kekId: '2023' } });
  });
});

describe('unwrap failures', () => {
  const keyring = new Keyring([kek('k1'), kek('k2')], 'k1');
  const dataKey = material('data');
  const { wrappedKey } = keyring.wrap(dataKey);

  it.each(['k3', 'K1', 'k1 ', '', 'k1x'])('an unknown KEK id %j is a metadata error', (id) => {
    const error = thrown(() => keyring.unwrap(id, wrappedKey, 'file-7'));
    expect(error).toBeInstanceOf(StorageMetadataError);
    expect(error).not.toBeInstanceOf(StorageFileCorruptedError);
    expect((error as StorageMetadataError).fileId).toBe('file-7');
  });

  it('any flipped bit of the wrapped key is corruption', () => {
    for (let position = 0; position < WRAPPED_KEY_LENGTH; position += 1) {
      for (const mask of [0x01, 0x80]) {
        const tampered = Buffer.from(wrappedKey);
        tampered[position]! ^= mask;
        const error = thrown(() => keyring.unwrap('k1', tampered, 'file-9'));
        expect(error, `byte ${position} mask ${mask}`).toBeInstanceOf(StorageFileCorruptedError);
        expect((error as StorageFileCorruptedError).fileId).toBe('file-9');
      }
    }
  });

  it('a wrapped key of the wrong length is corruption', () => {
    const cuts = [
      Buffer.alloc(0),
      wrappedKey.subarray(0, 8),
      wrappedKey.subarray(0, 32),
      wrappedKey.subarray(0, 39),
      Buffer.concat([wrappedKey, Buffer.alloc(1)]),
      Buffer.concat([wrappedKey, Buffer.alloc(8)]),
    ];
    for (const cut of cuts) expect(() => keyring.unwrap('k1', cut), `${cut.length} bytes`).toThrow(StorageFileCorruptedError);
  });

  it('a wrapped key of zeros or of random bytes is corruption', () => {
    for (const bogus of [Buffer.alloc(40), material('random', 40), Buffer.alloc(40, 0xa6)]) {
      expect(() => keyring.unwrap('k1', bogus)).toThrow(StorageFileCorruptedError);
    }
  });

  it('leaves the good wrapped key usable after failures', () => {
    expect(keyring.unwrap('k1', wrappedKey).equals(dataKey)).toBe(true);
  });
});

describe('Keyring constructor', () => {
  it('refuses an active id that names no key', () => {
    expect(() => new Keyring([kek('k1')], 'k2')).toThrow(/active/);
    expect(() => new Keyring([], 'k1')).toThrow(/active/);
    expect(() => new Keyring([kek('k1')], '')).toThrow();
  });

  it.each([0, 1, 16, 24, 31, 33, 64])('refuses a %i-byte key', (length) => {
    const key = material('bad length', length);
    const error = thrown(() => new Keyring([kek('k0'), { id: 'k1', key }], 'k0'));
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

  it('accepts ids of letters, digits, _ and -', () => {
    const ids = ['k1', 'K', '2024-01', 'a_b', '-', '_', 'x'.repeat(200)];
    const keyring = new Keyring(ids.map(kek), '2024-01');
    for (const id of ids) {
      expect(isValidKeyId(id)).toBe(true);
      const dataKey = material(`for ${id}`);
      expect(keyring.unwrap(id, new Keyring([kek(id)], id).wrap(dataKey).wrappedKey).equals(dataKey)).toBe(true);
    }
    for (const id of ['', 'a b', 'a:b', 'a.b', 'é', 'a\n']) expect(isValidKeyId(id)).toBe(false);
  });
});

describe('generateDataKey', () => {
  it('makes fresh 32-byte keys', () => {
    const keys = Array.from({ length: 50 }, generateDataKey);
    for (const key of keys) expect(key).toHaveLength(KEY_LENGTH);
    expect(new Set(keys.map((key) => key.toString('hex'))).size).toBe(keys.length);
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

  it('gives keys a Keyring takes', () => {
    const keys = parseKeyList(`old:${plain.toString('base64')},new:${tricky.toString('base64url')}`);
    const keyring = new Keyring(keys, 'new');
    const dataKey = material('data');
    const { kekId, wrappedKey } = keyring.wrap(dataKey);
    expect(kekId).toBe('new');
    expect(new Keyring([{ id: 'new', key: tricky }], 'new').unwrap(kekId, wrappedKey).equals(dataKey)).toBe(true);
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
    (_name, spec, secrets) => {
      const error = thrown(() => parseKeyList(spec));
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
