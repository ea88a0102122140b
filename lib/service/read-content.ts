import { createHash } from 'node:crypto';
import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { GetObjectCommand, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import {
  DEFAULT_FRAME_SIZE,
  cipherRangeFor,
  createDecryptStream,
  decodeEncryptionMetadata,
  frameCount,
  framesTouched,
} from '../crypto/frame-format.ts';
import { StorageFileCorruptedError, StorageMetadataError, StorageOperationError } from '../errors/catalogue.ts';
import { backend } from '../storage/backend-errors.ts';
import type { Manifest } from '../storage/manifest.ts';
import { finalKey, SEAL_ID_METADATA } from '../storage/object-layout.ts';
import type { StorageContext } from '../storage/storage-context.ts';
import type { ByteRange, RangeRequest } from '../byte-range.ts';

/**
 * Reads a stored recording back as plaintext. A range fetches only the ciphertext frames it
 * touches and decrypts those; a whole read also re-hashes the plaintext and fails the stream
 * if it differs from the SHA-256 recorded at processing. Every frame is authenticated before
 * its bytes are released, so a flipped byte yields `StorageFileCorruptedError`, never wrong bytes.
 *
 * Range reads are what an audio player seeking makes, so their latency counts: the frames a
 * range would need in an encrypted file of the default frame size are requested at once, in
 * parallel with the manifest read that authorises the call (`prefetchFrames`). Nothing of
 * them is released before the manifest says the caller owns a ready file; if the file turns
 * out to be stored otherwise, the prefetch is dropped and the right bytes fetched instead.
 * A process that has read the file's ready manifest before reads with no manifest at all: one
 * GET of exactly `storedByteRange` (ready-manifests.ts), handed here as `fetched`.
 */

/** Ciphertext frames requested before the manifest is known; see the note above. */
export interface FramePrefetch {
  firstFrame: number;
  /** Undefined for an open-ended range (to the end of the file). */
  lastFrame: number | undefined;
  response: Promise<GetObjectCommandOutput | undefined>;
  discard(): void;
}

export function prefetchFrames(ctx: StorageContext, fileId: string, range: RangeRequest): FramePrefetch | undefined {
  if ('suffix' in range || !Number.isSafeInteger(range.start)) return undefined;
  // A last position past any file is read as "to the end", which is what it means.
  const end = range.end !== undefined && Number.isSafeInteger(range.end) ? range.end : undefined;
  const { firstFrame, lastFrame, cipherStart, cipherEndInclusive } = framesTouched(range.start, end, DEFAULT_FRAME_SIZE);
  const byteRange = `bytes=${cipherStart}-${cipherEndInclusive ?? ''}`;
  // A failed prefetch (a range past the end, say) is not an answer: the normal path decides.
  const response = ctx.s3.internal
    .send(new GetObjectCommand({ Bucket: ctx.config.bucket, Key: finalKey(fileId), Range: byteRange }))
    .catch(() => undefined);
  return {
    firstFrame,
    lastFrame,
    response,
    discard: () => void response.then((out) => (out?.Body as Readable | undefined)?.destroy()),
  };
}

/** The stored bytes a read of `range` needs, as a `Range` header: the frames it touches where encrypted; undefined for the whole object. */
export function storedByteRange(stored: NonNullable<Manifest['stored']>, range: ByteRange | undefined): string | undefined {
  if (range === undefined) return undefined;
  if (!stored.encrypted) return `bytes=${range.start}-${range.end}`;
  if (stored.frameSize === undefined || stored.size === 0) return undefined;
  const window = cipherRangeFor(range.start, range.end, stored.size, stored.frameSize);
  return `bytes=${window.cipherStart}-${window.cipherEndInclusive}`;
}

/**
 * `source`: frames requested before the manifest was known (`prefetch`), or the response to a
 * GET of exactly `storedByteRange(manifest.stored, range)` (`fetched`, its body not read yet).
 */
export async function openPlaintext(
  ctx: StorageContext,
  manifest: Manifest & { stored: NonNullable<Manifest['stored']> },
  range: ByteRange | undefined,
  source: { prefetch?: FramePrefetch | undefined; fetched?: GetObjectCommandOutput } = {},
): Promise<Readable> {
  const { fileId, stored } = manifest;
  const { prefetch, fetched } = source;
  const s3 = ctx.s3.internal;
  const get = (byteRange: string | undefined) =>
    backend('getFile', fileId, () =>
      s3.send(new GetObjectCommand({ Bucket: ctx.config.bucket, Key: finalKey(fileId), Range: byteRange })),
    );

  if (!stored.encrypted) {
    prefetch?.discard();
    const out = fetched ?? (await get(storedByteRange(stored, range)));
    const body = out.Body as Readable;
    assertSameSeal(out, stored, body, fileId);
    return range ? body : chain(body, new Sha256Verifier(stored.sha256, fileId));
  }

  const frameSize = stored.frameSize;
  if (frameSize === undefined) {
    prefetch?.discard();
    throw new StorageMetadataError('File manifest lacks the frame size of its encrypted object.', { operation: 'getFile', fileId });
  }
  const window = range && stored.size > 0 ? cipherRangeFor(range.start, range.end, stored.size, frameSize) : undefined;
  const lastFrameOfFile = frameCount(stored.size, frameSize) - 1;
  const prefetchFits =
    window !== undefined &&
    frameSize === DEFAULT_FRAME_SIZE &&
    prefetch?.firstFrame === window.firstFrame &&
    Math.min(prefetch.lastFrame ?? lastFrameOfFile, lastFrameOfFile) === window.lastFrame;
  if (prefetch && !prefetchFits) prefetch.discard();
  const prefetched = prefetchFits ? await prefetch!.response : undefined;
  const out = fetched ?? prefetched ?? (await get(storedByteRange(stored, range)));
  const body = out.Body as Readable;
  assertSameSeal(out, stored, body, fileId);
  try {
    if (!ctx.keyring) {
      // Encryption was turned off after this file was stored: a configuration problem, not the file's.
      throw new StorageOperationError('File is encrypted but no encryption keys are configured.', { operation: 'getFile', fileId });
    }
    const encryption = decodeEncryptionMetadata(out.Metadata ?? {}, fileId);
    if (encryption.frameSize !== frameSize) {
      throw new StorageFileCorruptedError('Stored object and manifest disagree on the frame size.', { operation: 'getFile', fileId });
    }
    const dataKey = await ctx.keyring.unwrap(encryption.kekId, encryption.wrappedKey, fileId);
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

/**
 * The object read must be the one the manifest describes: a manifest put back from an earlier
 * file, or an object put in another's place, would otherwise pass every other check but the
 * whole-file hash, which a range read never reaches.
 */
export function assertSameSeal(out: GetObjectCommandOutput, stored: NonNullable<Manifest['stored']>, body: Readable, fileId: string): void {
  if (stored.sealId === undefined || out.Metadata?.[SEAL_ID_METADATA] === stored.sealId) return;
  body.destroy();
  throw new StorageFileCorruptedError('Stored object is not the one its manifest describes.', { operation: 'getFile', fileId });
}

/** Streams joined so that an error anywhere destroys them all and surfaces on the last. */
export function chain(...streams: [Readable, ...NodeJS.ReadWriteStream[]]): Readable {
  return pipeline(streams as NodeJS.ReadWriteStream[], () => undefined) as unknown as Readable;
}

/** Passes bytes through and fails at the end if their SHA-256 is not the recorded one. */
export class Sha256Verifier extends Transform {
  readonly #hash = createHash('sha256');
  readonly #expected: string;
  readonly #fileId: string;
  readonly #operation: string;

  constructor(expected: string, fileId: string, operation = 'getFile') {
    super();
    this.#expected = expected;
    this.#fileId = fileId;
    this.#operation = operation;
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
            operation: this.#operation,
            fileId: this.#fileId,
          }),
    );
  }
}
