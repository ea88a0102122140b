/**
 * Envelope encryption. Every stored object, and every file's manifest, has its own random
 * 32-byte data key; it is kept only wrapped, beside what it protects, under a key-encryption
 * key (KEK) named by id:
 *
 *   enc-kek = KEK id     enc-key = the wrapped data key
 *
 * Two kinds of KEK wrap keys:
 * - static keys (`STORAGE_ENCRYPTION_KEYS`, `id:base64`), wrapping with AES key wrap (RFC 3394,
 *   40 bytes out), which carries its own integrity check: a wrong KEK or a tampered wrapped key
 *   is detected before a bogus data key reaches a decryptor;
 * - an AWS KMS key (`STORAGE_ENCRYPTION_KMS_KEY_ID`), id `kms`: data keys come from
 *   `GenerateDataKey` and are opened with `Decrypt` (see kms-key-provider.ts).
 *
 * One KEK is active and wraps every new key; the others still unwrap what they wrapped.
 * Rotation makes a new KEK active and then re-wraps every stored key under it
 * (`npm run rotate-keys`), after which the old KEK may be removed.
 */

import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { StorageFileCorruptedError, StorageMetadataError } from '../errors/catalogue.ts';

export interface KeyEncryptionKey {
  id: string;
  /** 32 bytes. */
  key: Buffer;
}

/** A KEK held outside the process (AWS KMS): it makes and opens data keys, it never hands itself out. */
export interface RemoteKeyProvider {
  readonly id: string;
  generateDataKey(): Promise<{ dataKey: Buffer; wrappedKey: Buffer }>;
  wrap(dataKey: Buffer): Promise<Buffer>;
  /** Throws StorageFileCorruptedError when the wrapped key does not open. */
  unwrap(wrappedKey: Buffer, fileId?: string): Promise<Buffer>;
}

export interface WrappedDataKey {
  kekId: string;
  wrappedKey: Buffer;
}

export const KEY_LENGTH = 32;
export const WRAPPED_KEY_LENGTH = KEY_LENGTH + 8;
/** A KMS ciphertext blob of a 32-byte key is about 184 bytes; this bounds what metadata may claim. */
export const MAX_WRAPPED_KEY_LENGTH = 1024;
export const KMS_KEK_ID = 'kms';

const KEY_WRAP_ALGORITHM = 'id-aes256-wrap';
// The RFC 3394 default initial value; unwrapping checks it, which is the integrity check.
const KEY_WRAP_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
const KEY_ID_PATTERN = /^[A-Za-z0-9_-]+$/;

export function isValidKeyId(id: string): boolean {
  return KEY_ID_PATTERN.test(id);
}

export class Keyring {
  // KeyObjects copy the material: callers may wipe their buffers, and the keys never print.
  readonly #keys: Map<string, KeyObject>;
  readonly #activeId: string;
  readonly #remote: RemoteKeyProvider | undefined;

  constructor(keys: KeyEncryptionKey[], activeId: string, remote?: RemoteKeyProvider) {
    const map = new Map<string, KeyObject>();
    for (const [position, { id, key }] of keys.entries()) {
      if (!isValidKeyId(id)) {
        throw new Error(`key ${position + 1}: id must be made of letters, digits, '_' and '-'`);
      }
      if (map.has(id) || id === remote?.id) throw new Error(`key "${id}" is given more than once`);
      if (key.length !== KEY_LENGTH) throw new Error(`key "${id}" must be ${KEY_LENGTH} bytes, got ${key.length}`);
      map.set(id, createSecretKey(key));
    }
    if (!map.has(activeId) && activeId !== remote?.id) throw new Error('the active key id names no key of the keyring');
    this.#keys = map;
    this.#activeId = activeId;
    this.#remote = remote;
  }

  get activeId(): string {
    return this.#activeId;
  }

  /** Every KEK id this keyring can unwrap. */
  get ids(): string[] {
    return [...this.#keys.keys(), ...(this.#remote ? [this.#remote.id] : [])];
  }

  /** A fresh data key and its wrapping under the active KEK. The caller wipes `dataKey` after use. */
  async newDataKey(): Promise<{ dataKey: Buffer } & WrappedDataKey> {
    if (this.#remote?.id === this.#activeId) {
      const { dataKey, wrappedKey } = await this.#remote.generateDataKey();
      return { dataKey, kekId: this.#activeId, wrappedKey };
    }
    const dataKey = randomBytes(KEY_LENGTH);
    return { dataKey, ...(await this.wrap(dataKey)) };
  }

  async wrap(dataKey: Buffer): Promise<WrappedDataKey> {
    if (dataKey.length !== KEY_LENGTH) throw new Error(`a data key must be ${KEY_LENGTH} bytes`);
    if (this.#remote?.id === this.#activeId) return { kekId: this.#activeId, wrappedKey: await this.#remote.wrap(dataKey) };
    const cipher = createCipheriv(KEY_WRAP_ALGORITHM, this.#keys.get(this.#activeId)!, KEY_WRAP_IV);
    const wrappedKey = Buffer.concat([cipher.update(dataKey), cipher.final()]);
    return { kekId: this.#activeId, wrappedKey };
  }

  async unwrap(kekId: string, wrappedKey: Buffer, fileId?: string): Promise<Buffer> {
    if (this.#remote !== undefined && kekId === this.#remote.id) return this.#remote.unwrap(wrappedKey, fileId);
    const kek = this.#keys.get(kekId);
    if (kek === undefined) {
      // Either the metadata is damaged or the KEK was retired too early: both are operator matters.
      throw new StorageMetadataError('The object is wrapped with an unknown key-encryption key', {
        operation: 'unwrapKey',
        fileId,
        details: { kekId },
      });
    }
    const corrupted = (cause?: unknown) =>
      new StorageFileCorruptedError('The wrapped data key fails its integrity check', {
        operation: 'unwrapKey',
        fileId,
        details: { kekId },
        cause,
      });
    if (wrappedKey.length !== WRAPPED_KEY_LENGTH) throw corrupted();
    let dataKey: Buffer;
    try {
      // OpenSSL reports a failed check from update() as well as final(), so both stay inside the try.
      const decipher = createDecipheriv(KEY_WRAP_ALGORITHM, kek, KEY_WRAP_IV);
      dataKey = Buffer.concat([decipher.update(wrappedKey), decipher.final()]);
    } catch (error) {
      throw corrupted(error);
    }
    if (dataKey.length !== KEY_LENGTH) throw corrupted();
    return dataKey;
  }

  /** Wraps an existing data key under the active KEK, unless it already is: what rotation does to each key. */
  async rewrap(wrapped: WrappedDataKey, fileId?: string): Promise<WrappedDataKey | undefined> {
    if (wrapped.kekId === this.#activeId) return undefined;
    const dataKey = await this.unwrap(wrapped.kekId, wrapped.wrappedKey, fileId);
    try {
      return await this.wrap(dataKey);
    } finally {
      dataKey.fill(0);
    }
  }
}

/**
 * Reads `id1:BASE64,id2:BASE64` (standard or URL-safe base64, padding optional). Messages name
 * an entry by its id, or by its position when the id itself is unusable, and never quote what
 * follows the colon: this is read from the environment, and its errors end up in logs.
 */
export function parseKeyList(spec: string): KeyEncryptionKey[] {
  const entries = spec.split(',').map((entry) => entry.trim());
  if (entries.length === 1 && entries[0] === '') throw new Error('no key given (expected "id:base64key,...")');
  const keys: KeyEncryptionKey[] = [];
  const seen = new Set<string>();
  for (const [position, entry] of entries.entries()) {
    const where = `entry ${position + 1}`;
    if (entry === '') throw new Error(`${where} is empty`);
    const colon = entry.indexOf(':');
    if (colon < 0) throw new Error(`${where} is not of the form id:base64key`);
    const id = entry.slice(0, colon).trim();
    if (!isValidKeyId(id)) {
      throw new Error(`${where}: the key id is missing or has characters other than letters, digits, '_' and '-'`);
    }
    if (seen.has(id)) throw new Error(`key "${id}" is given more than once`);
    seen.add(id);
    const key = decodeKey(entry.slice(colon + 1).trim());
    if (key === undefined) throw new Error(`key "${id}" is not the base64 of exactly ${KEY_LENGTH} bytes`);
    keys.push({ id, key });
  }
  return keys;
}

function decodeKey(text: string): Buffer | undefined {
  // 32 bytes are 43 base64 characters and one '=' of padding.
  if (!/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) return undefined;
  const standard = text.replaceAll('-', '+').replaceAll('_', '/');
  const key = Buffer.from(standard, 'base64');
  // Re-encoding rejects a last character with stray low bits, which would otherwise alias another key.
  if (key.length !== KEY_LENGTH || key.toString('base64').replace(/=+$/, '') !== standard.replace(/=+$/, '')) {
    return undefined;
  }
  return key;
}
