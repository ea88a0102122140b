/**
 * Sealed manifests. A manifest says who owns a recording and what it is called, which for
 * therapy sessions and medical dictation is personal data; and what it says decides what a
 * read serves. So it is stored in two parts, both authenticated, only one readable:
 *
 *   {
 *     "version": 2, "fileId": …, "status": …, "size": …, dates, attempts, lease, multipart,
 *     "stored": { "size", "storedSize", "encrypted", "frameSize", "sealId" },     ← the clear part
 *     "sealed": { "kek": KEK id, "key": wrapped manifest key, "iv": 12 bytes,
 *                 "data": AES-256-GCM(owner, filename, types, metadata, sha256s, audio, …) ‖ tag }
 *   }
 *
 * - The clear part is what operations list and act on (the sweep, alarms, an operator): status,
 *   sizes, dates. Nothing in it names a person. Every field not listed as clear is sealed, so a
 *   field added later is private unless someone decides otherwise here.
 * - The associated data of the seal is the canonical JSON of the whole clear part (keys sorted,
 *   the fileId in it), so editing any clear field (`stored.encrypted`, a status, a size), or
 *   moving a manifest to another file, fails the tag: StorageMetadataError, never a wrong answer.
 * - Each write seals under a fresh data key wrapped by the active key-encryption key (keyring.ts),
 *   so rotation re-wraps a manifest by rewriting it, and a KMS key serves as well as a static one.
 * - A manifest put back from an earlier write authenticates (it was genuine once); what it may
 *   not do is describe another object than the one stored: `stored.sealId` names the object's
 *   seal, which the object's own metadata carries, and a read checks the two agree.
 *
 * Version 1 manifests (all in the clear) are read only where encryption is off; where it is on,
 * `npm run rotate-keys` seals them, and until then they are refused rather than trusted.
 */

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { StorageMetadataError } from '../errors/catalogue.ts';
import type { Keyring } from './keyring.ts';
import { MAX_WRAPPED_KEY_LENGTH, isValidKeyId } from './keyring.ts';

export const SEALED_MANIFEST_VERSION = 2;
const AAD_PREFIX = 'transcribo/manifest/v2\n';
const IV_LENGTH = 12;
const TAG_LENGTH = 16;

/** Top-level fields that stay readable; `stored` is split field by field below. */
const CLEAR_FIELDS = new Set(['version', 'fileId', 'status', 'reason', 'size', 'createdAt', 'updatedAt', 'uploadExpiresAt', 'attempts', 'multipart', 'leaseUntil', 'stored']);
const CLEAR_STORED_FIELDS = new Set(['size', 'storedSize', 'encrypted', 'frameSize', 'sealId']);

type Json = Record<string, unknown>;

/** Splits a manifest into its clear part and its private part. */
function split(manifest: Json): { clear: Json; secret: Json } {
  const clear: Json = {};
  const secret: Json = {};
  for (const [name, value] of Object.entries(manifest)) {
    if (value === undefined) continue;
    if (name === 'stored' && value !== null && typeof value === 'object') {
      const storedClear: Json = {};
      const storedSecret: Json = {};
      for (const [field, v] of Object.entries(value as Json)) {
        if (v === undefined) continue;
        (CLEAR_STORED_FIELDS.has(field) ? storedClear : storedSecret)[field] = v;
      }
      clear.stored = storedClear;
      if (Object.keys(storedSecret).length > 0) secret.stored = storedSecret;
    } else {
      (CLEAR_FIELDS.has(name) ? clear : secret)[name] = value;
    }
  }
  return { clear, secret };
}

/**
 * JSON with object keys sorted at every depth: the same clear part always gives the same bytes.
 * It goes through JSON first, so what JSON changes on the way to storage (a `toJSON`, an
 * undefined in an array) is changed here too, and the bytes sealed are the bytes read back.
 */
export function canonicalJson(value: unknown): string {
  return sortedJson(JSON.parse(JSON.stringify(value)) as unknown);
}

function sortedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Json).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${sortedJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const aad = (clear: Json) => Buffer.from(AAD_PREFIX + canonicalJson(clear), 'utf8');

/** The stored form of a manifest (version 2), sealed under a fresh key wrapped by the active KEK. */
export async function sealManifest(manifest: Json, keyring: Keyring): Promise<Json> {
  const { clear, secret } = split({ ...manifest, version: SEALED_MANIFEST_VERSION });
  const { dataKey, kekId, wrappedKey } = await keyring.newDataKey();
  try {
    const iv = randomBytes(IV_LENGTH);
    const cipher = createCipheriv('aes-256-gcm', dataKey, iv, { authTagLength: TAG_LENGTH });
    cipher.setAAD(aad(clear));
    const data = Buffer.concat([cipher.update(JSON.stringify(secret), 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return { ...clear, sealed: { kek: kekId, key: wrappedKey.toString('base64url'), iv: iv.toString('base64url'), data: data.toString('base64url') } };
  } finally {
    dataKey.fill(0);
  }
}

/**
 * The whole manifest from its stored form, and the KEK that wraps it. Any mismatch throws:
 * StorageMetadataError, or StorageFileCorruptedError when the wrapped key itself fails its check.
 */
export async function openManifest(stored: Json, keyring: Keyring, fileId: string): Promise<{ manifest: Json; kekId: string }> {
  const invalid = (why: string, cause?: unknown) =>
    new StorageMetadataError('File manifest fails its integrity check.', { operation: 'readManifest', fileId, details: { why }, cause });
  const { sealed, ...clear } = stored;
  if (sealed === null || typeof sealed !== 'object') throw invalid('not sealed');
  const { kek, key, iv, data } = sealed as Json;
  if (typeof kek !== 'string' || !isValidKeyId(kek)) throw invalid('unreadable key id');
  const wrappedKey = strictBase64Url(key, 1, MAX_WRAPPED_KEY_LENGTH);
  const ivBytes = strictBase64Url(iv, IV_LENGTH, IV_LENGTH);
  const dataBytes = strictBase64Url(data, TAG_LENGTH, Number.MAX_SAFE_INTEGER);
  if (wrappedKey === undefined || ivBytes === undefined || dataBytes === undefined) throw invalid('unreadable seal');
  if (clear.fileId !== fileId) throw invalid('belongs to another file');
  if (clear.stored !== undefined && (clear.stored === null || typeof clear.stored !== 'object')) throw invalid('unreadable stored attributes');

  const dataKey = await keyring.unwrap(kek, wrappedKey, fileId);
  let plain: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', dataKey, ivBytes, { authTagLength: TAG_LENGTH });
    decipher.setAAD(aad(clear));
    decipher.setAuthTag(dataBytes.subarray(dataBytes.length - TAG_LENGTH));
    plain = Buffer.concat([decipher.update(dataBytes.subarray(0, dataBytes.length - TAG_LENGTH)), decipher.final()]).toString('utf8');
  } catch (error) {
    throw invalid('tag does not verify', error);
  } finally {
    dataKey.fill(0);
  }
  const secret = JSON.parse(plain) as Json;
  const storedSecret = (secret.stored ?? {}) as Json;
  delete secret.stored;
  const manifest: Json = { ...clear, ...secret };
  if (clear.stored !== undefined) manifest.stored = { ...(clear.stored as Json), ...storedSecret };
  // The rest of the code knows one shape of manifest; the version is a matter of storage.
  manifest.version = 1;
  return { manifest, kekId: kek };
}

function strictBase64Url(value: unknown, min: number, max: number): Buffer | undefined {
  if (typeof value !== 'string') return undefined;
  const bytes = Buffer.from(value, 'base64url');
  return bytes.length >= min && bytes.length <= max && bytes.toString('base64url') === value ? bytes : undefined;
}
