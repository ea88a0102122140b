import { createHash } from 'node:crypto';
import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { cipherRangeFor, createDecryptStream, decodeEncryptionMetadata } from '../crypto/frame-format.ts';
import { StorageFileCorruptedError } from '../errors/catalogue.ts';
import { backend } from './backend-errors.ts';
import type { Manifest } from './manifest.ts';
import { finalKey } from './object-layout.ts';
import type { StorageContext } from './storage-context.ts';

/**
 * Reads a stored recording back as plaintext. A range fetches only the ciphertext frames it
 * touches and decrypts those; a whole read also re-hashes the plaintext and fails the stream
 * if it differs from the SHA-256 recorded at processing. Every frame is authenticated before
 * its bytes are released, so a flipped byte yields `StorageFileCorruptedError`, never wrong bytes.
 */

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

export async function openPlaintext(
  ctx: StorageContext,
  manifest: Manifest & { stored: NonNullable<Manifest['stored']> },
  range: ByteRange | undefined,
): Promise<Readable> {
  const { fileId, stored } = manifest;
  const s3 = ctx.s3.internal;
  const get = (byteRange: string | undefined) =>
    backend('getFile', fileId, () =>
      s3.send(new GetObjectCommand({ Bucket: ctx.config.bucket, Key: finalKey(fileId), Range: byteRange })),
    );

  if (!stored.encrypted) {
    const out = await get(range ? `bytes=${range.start}-${range.end}` : undefined);
    const body = out.Body as Readable;
    return range ? body : chain(body, new Sha256Verifier(stored.sha256, fileId));
  }

  const frameSize = stored.frameSize ?? 0;
  const window = range && stored.size > 0 ? cipherRangeFor(range.start, range.end, stored.size, frameSize) : undefined;
  const out = await get(window && `bytes=${window.cipherStart}-${window.cipherEndInclusive}`);
  const body = out.Body as Readable;
  try {
    if (!ctx.keyring) {
      throw new StorageFileCorruptedError('File is encrypted but no encryption keys are configured.', { operation: 'getFile', fileId });
    }
    const encryption = decodeEncryptionMetadata(out.Metadata ?? {}, fileId);
    if (encryption.frameSize !== frameSize) {
      throw new StorageFileCorruptedError('Stored object and manifest disagree on the frame size.', { operation: 'getFile', fileId });
    }
    const dataKey = ctx.keyring.unwrap(encryption.kekId, encryption.wrappedKey, fileId);
    const decryptor = createDecryptStream({
      dataKey,
      noncePrefix: encryption.noncePrefix,
      frameSize,
      fileId,
      plainSize: stored.size,
      ...(window && { firstFrame: window.firstFrame, lastFrame: window.lastFrame, skip: window.skip, length: window.length }),
    });
    dataKey.fill(0);
    return window ? chain(body, decryptor) : chain(body, decryptor, new Sha256Verifier(stored.sha256, fileId));
  } catch (error) {
    body.destroy();
    throw error;
  }
}

/** Streams joined so that an error anywhere destroys them all and surfaces on the last. */
function chain(...streams: [Readable, ...NodeJS.ReadWriteStream[]]): Readable {
  return pipeline(streams as NodeJS.ReadWriteStream[], () => undefined) as unknown as Readable;
}

/** Passes bytes through and fails at the end if their SHA-256 is not the recorded one. */
class Sha256Verifier extends Transform {
  readonly #hash = createHash('sha256');
  readonly #expected: string;
  readonly #fileId: string;

  constructor(expected: string, fileId: string) {
    super();
    this.#expected = expected;
    this.#fileId = fileId;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.#hash.digest('hex');
    callback(
      actual === this.#expected
        ? null
        : new StorageFileCorruptedError('Stored file does not match its recorded SHA-256.', {
            operation: 'getFile',
            fileId: this.#fileId,
          }),
    );
  }
}
