import { Readable } from 'node:stream';
import { createDecryptStream, decodeEncryptionMetadata, type EncryptionMetadata } from '../crypto/frame-format.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { StorageMetadataError, StorageOperationError } from '../errors/catalogue.ts';
import type { Manifest } from '../storage/manifest.ts';
import { isFileId } from '../storage/object-layout.ts';
import { chain, Sha256Verifier } from './read-content.ts';

/**
 * A recording taken out of storage as it is stored (`getFile(…, { decrypt: false })`), to be
 * opened later, elsewhere, with the keys: an archive, a copy to cold storage, a hand-over.
 *
 * The bytes are the stored object exactly (for an encrypted file, the sealed frames of
 * lib/crypto/frame-format.ts). The description says what opening them takes besides the keys,
 * every field a JSON string or number so that it can be kept beside the bytes:
 *
 *   encrypted: true   version, kekId, wrappedKey, noncePrefix, frameSize   (the object's own
 *                     encryption metadata: format version, key-encryption key id, the data key
 *                     wrapped under that KEK, nonce prefix, plaintext bytes per frame)
 *   always            fileId (bound into every frame as associated data), size and sha256 of
 *                     the plaintext, storedSize (bytes of the export)
 *
 * It never holds the data key itself: only the KEK named by `kekId` (a static key, or the KMS
 * key) opens it, so an export is as safe as the stored object, and needs that KEK kept as long
 * as the export is (`npm run rotate-keys` re-wraps what is in the bucket, not exports).
 * Opening authenticates every frame and checks the SHA-256 of the whole plaintext: a flipped,
 * dropped or added byte, a wrong fileId, size or hash is `StorageFileCorruptedError`, never
 * wrong bytes.
 */

export type SealedExport = EncryptedExport | PlainExport;

interface ExportedFile {
  fileId: string;
  /** Plaintext bytes. */
  size: number;
  /** SHA-256 of the plaintext, hex. */
  sha256: string;
  /** Bytes of the export (the stored object). */
  storedSize: number;
}

export interface EncryptedExport extends ExportedFile {
  encrypted: true;
  /** The encrypted object format's version (lib/crypto/frame-format.ts). */
  version: number;
  /** The key-encryption key that wraps the data key (`kms` for the KMS key). */
  kekId: string;
  /** The data key, wrapped under `kekId`: base64url. */
  wrappedKey: string;
  /** The per-file nonce prefix: base64url. */
  noncePrefix: string;
  /** Plaintext bytes per frame. */
  frameSize: number;
}

export interface PlainExport extends ExportedFile {
  /** Stored in the clear: the export is the plaintext, opening only checks it. */
  encrypted: false;
}

/** What opens a data key: a Keyring (lib/crypto/keyring.ts), or anything that unwraps as one. */
export type KeyUnwrapper = Pick<Keyring, 'unwrap'>;

type StoredAttributes = NonNullable<Manifest['stored']>;

/** The description of a stored object, from its manifest and (when encrypted) the object's own metadata. */
export function describeStoredObject(fileId: string, stored: StoredAttributes, encryption: EncryptionMetadata | undefined): SealedExport {
  const file = { fileId, size: stored.size, sha256: stored.sha256, storedSize: stored.storedSize };
  if (encryption === undefined) return { encrypted: false, ...file };
  return {
    encrypted: true,
    ...file,
    version: encryption.version,
    kekId: encryption.kekId,
    wrappedKey: encryption.wrappedKey.toString('base64url'),
    noncePrefix: encryption.noncePrefix.toString('base64url'),
    frameSize: encryption.frameSize,
  };
}

const OPERATION = 'openSealedExport';

/**
 * The plaintext of an export, as a stream that fails with `StorageFileCorruptedError` (at the
 * frame, or at the end for the SHA-256) if the bytes or the description were changed. `keys` is
 * needed for an encrypted export: a Keyring holding the KEK named by `sealed.kekId`.
 */
export async function openSealedExport(sealed: SealedExport, stored: Readable | Uint8Array, keys?: KeyUnwrapper): Promise<Readable> {
  const source = stored instanceof Readable ? stored : Readable.from([Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength)]);
  try {
    const file = checkedDescription(sealed);
    if (!sealed.encrypted) return chain(source, new Sha256Verifier(file.sha256, file.fileId, OPERATION));
    // The same strict reading the object's own metadata gets: version, key id, lengths, frame size.
    const encryption = decodeEncryptionMetadata(
      {
        'enc-version': String(sealed.version),
        'enc-kek': String(sealed.kekId),
        'enc-key': String(sealed.wrappedKey),
        'enc-nonce': String(sealed.noncePrefix),
        'enc-frame': String(sealed.frameSize),
      },
      file.fileId,
    );
    if (keys === undefined) {
      throw new StorageOperationError('The export is encrypted but no encryption keys were given to open it.', { operation: OPERATION, fileId: file.fileId });
    }
    const dataKey = await keys.unwrap(encryption.kekId, encryption.wrappedKey, file.fileId);
    try {
      const decryptor = createDecryptStream({
        dataKey,
        noncePrefix: encryption.noncePrefix,
        frameSize: encryption.frameSize,
        fileId: file.fileId,
        plainSize: file.size,
      });
      return chain(source, decryptor, new Sha256Verifier(file.sha256, file.fileId, OPERATION));
    } finally {
      // The decryptor holds its own copy of the key.
      dataKey.fill(0);
    }
  } catch (error) {
    source.destroy();
    throw error;
  }
}

/** The fields every export has, checked: a description that is not one is a metadata error, as a damaged manifest is. */
function checkedDescription(sealed: SealedExport): ExportedFile {
  const fail = (field: string) =>
    new StorageMetadataError(`The export's description has no usable ${field}.`, { operation: OPERATION, details: { field } });
  if (sealed === null || typeof sealed !== 'object') throw fail('fields');
  const { fileId, size, sha256, storedSize, encrypted } = sealed;
  if (typeof fileId !== 'string' || !isFileId(fileId)) throw fail('fileId');
  if (!Number.isSafeInteger(size) || size < 0) throw fail('size');
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) throw fail('sha256');
  if (!Number.isSafeInteger(storedSize) || storedSize < 0) throw fail('storedSize');
  if (encrypted !== true && encrypted !== false) throw fail('encrypted');
  return { fileId, size, sha256, storedSize };
}
