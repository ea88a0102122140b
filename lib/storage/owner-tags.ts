import { createHash, createHmac } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Keyring, WrappedDataKey } from '../crypto/keyring.ts';
import { StorageMetadataError } from '../errors/catalogue.ts';
import { isNotFound, isPreconditionFailed, toStorageError } from './backend-errors.ts';
import type { StorageContext } from './storage-context.ts';

/**
 * Owner tags: what stands for an owner in object keys that must be found by owner (the
 * per-owner usage of quotas), without the owner's identity (often an e-mail) ever appearing
 * in a key or a listing.
 *
 *   tag = hex(HMAC-SHA256(owner-tag key, owner))[0..32]
 *
 * The owner-tag key is one random 32-byte key per deployment, stored in the final bucket at
 * `keys/owner-tags.json` only wrapped under a key-encryption key, like every data key: it is
 * created by the first caller that needs it (If-None-Match, so two first callers agree on
 * one), kept in memory per context, and re-wrapped by `npm run rotate-keys`. A plain hash of an
 * e-mail would be reversed by anyone with a list of e-mails; the keyed one is not.
 * With encryption off nothing else is protected either, and a plain hash stands in.
 */

export const OWNER_TAG_KEY = 'keys/owner-tags.json';

interface StoredTagKey {
  kek: string;
  key: string;
}

const cache = new WeakMap<StorageContext, Promise<Buffer>>();

export async function ownerTag(ctx: StorageContext, owner: string): Promise<string> {
  const keyring = ctx.keyring;
  if (keyring === undefined) return createHash('sha256').update(`transcribo/owner/${owner}`).digest('hex').slice(0, 32);
  let key = cache.get(ctx);
  if (key === undefined) {
    key = loadOrCreateTagKey(ctx.s3.internal, ctx.config.bucket, keyring);
    cache.set(ctx, key);
    key.catch(() => cache.delete(ctx));
  }
  return createHmac('sha256', await key).update(owner, 'utf8').digest('hex').slice(0, 32);
}

async function loadOrCreateTagKey(s3: S3Client, bucket: string, keyring: Keyring): Promise<Buffer> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const stored = await readTagKey(s3, bucket);
    if (stored !== undefined) return keyring.unwrap(stored.wrapped.kekId, stored.wrapped.wrappedKey);
    const { dataKey, kekId, wrappedKey } = await keyring.newDataKey();
    try {
      await writeTagKey(s3, bucket, { kekId, wrappedKey }, { IfNoneMatch: '*' });
      return dataKey;
    } catch (error) {
      // Another first caller stored its key first: use that one.
      if (!isPreconditionFailed(error)) throw error;
    }
  }
  throw new StorageMetadataError('The owner-tag key could not be read or created.', { operation: 'ownerTag' });
}

export async function readTagKey(s3: S3Client, bucket: string): Promise<{ wrapped: WrappedDataKey; etag: string } | undefined> {
  let text: string;
  let etag: string;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: OWNER_TAG_KEY }));
    text = (await out.Body?.transformToString('utf8')) ?? '';
    etag = out.ETag ?? '';
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw toStorageError(error, 'readOwnerTagKey');
  }
  try {
    const { kek, key } = JSON.parse(text) as StoredTagKey;
    if (typeof kek !== 'string' || typeof key !== 'string') throw new Error('fields');
    return { wrapped: { kekId: kek, wrappedKey: Buffer.from(key, 'base64url') }, etag };
  } catch {
    throw new StorageMetadataError('The owner-tag key is unreadable.', { operation: 'readOwnerTagKey' });
  }
}

/** Writes the wrapped owner-tag key under a condition (If-None-Match for the first, If-Match to re-wrap it). */
export async function writeTagKey(s3: S3Client, bucket: string, wrapped: WrappedDataKey, condition: { IfNoneMatch?: string; IfMatch?: string }): Promise<void> {
  const body: StoredTagKey = { kek: wrapped.kekId, key: wrapped.wrappedKey.toString('base64url') };
  // Failures stay raw: the caller tells a lost race (412) from a real failure.
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: OWNER_TAG_KEY, Body: JSON.stringify(body), ContentType: 'application/json', ...condition }));
}
