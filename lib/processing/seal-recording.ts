import { randomBytes } from 'node:crypto';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import type { AudioExtension } from '../audio-formats.ts';
import type { Keyring } from '../crypto/keyring.ts';
import {
  DEFAULT_FRAME_SIZE,
  FORMAT_VERSION,
  FrameEncryptor,
  cipherSize,
  encodeEncryptionMetadata,
  newNoncePrefix,
} from '../crypto/frame-format.ts';
import { toStorageError } from '../storage/backend-errors.ts';
import type { Manifest } from '../storage/manifest.ts';
import { finalKey, SEAL_ID_METADATA } from '../storage/object-layout.ts';
import { PartWriter } from '../storage/part-writer.ts';
import type { AudioDescription } from './audio-check.ts';
import { UploadInspector, UploadRejection } from './upload-inspector.ts';

/**
 * The one write path of a recording, for an upload being processed and for `storeFile` alike:
 * one loop over the plaintext source that, for each piece, inspects it (size, SHA-256, magic
 * bytes, audio structure), seals it into 64 KiB AES-256-GCM frames and copies the frames into
 * the part writer's buffers, which go to the final bucket as parts (lib/storage/part-writer.ts).
 * No stream stage sits between the steps, and no part buffer is allocated per part.
 *
 * Nothing is visible under the final key before every check has passed: the declared SHA-256
 * is compared before the object is completed, and any failure aborts the multipart upload. A
 * content problem surfaces as `UploadRejection`; an abort (a lost lease, a delete) as the
 * signal's reason; a backend failure as a StorageError.
 */

export interface SealInput {
  s3: S3Client;
  bucket: string;
  fileId: string;
  /** The plaintext; a promise of it lets the writer's first request run beside opening it. */
  source: Readable | Promise<Readable>;
  extension: AudioExtension;
  expectedSize?: number | undefined;
  maxSize: number;
  declaredSha256?: string | undefined;
  /** Undefined stores plaintext (STORAGE_ENCRYPTION_ENABLED=false). */
  keyring: Keyring | undefined;
  /** Aborting stops the pass and abandons the multipart upload: nothing is written after it. */
  signal?: AbortSignal | undefined;
}

export interface SealResult {
  sha256: string;
  size: number;
  storedSize: number;
  encrypted: boolean;
  /** Plaintext bytes per encrypted frame; undefined when stored in the clear. */
  frameSize: number | undefined;
  encryptMs: number;
  /** Also in the object's metadata: the manifest records it, and a read checks the two agree. */
  sealId: string;
  /** What the audio check found: duration, codec, sample rate, channels. */
  audio: AudioDescription;
}

export async function sealRecording(input: SealInput): Promise<SealResult> {
  const { fileId, keyring, signal } = input;
  const opening = Promise.resolve(input.source);
  let source: Readable | undefined;
  const inspector = new UploadInspector({ extension: input.extension, expectedSize: input.expectedSize, maxSize: input.maxSize });
  let writer: PartWriter | undefined;
  try {
    // The seal id ties this object to the manifest that describes it (see lib/service/read-content.ts).
    const sealId = randomBytes(16).toString('base64url');
    const metadata: Record<string, string> = { 'file-id': fileId, [SEAL_ID_METADATA]: sealId };
    let encryptor: FrameEncryptor | undefined;
    if (keyring) {
      const { dataKey, kekId, wrappedKey } = await keyring.newDataKey();
      const noncePrefix = newNoncePrefix();
      encryptor = new FrameEncryptor({ dataKey, noncePrefix, frameSize: DEFAULT_FRAME_SIZE, fileId });
      dataKey.fill(0);
      Object.assign(metadata, encodeEncryptionMetadata({ version: FORMAT_VERSION, kekId, wrappedKey, noncePrefix, frameSize: DEFAULT_FRAME_SIZE }));
    }
    const expectedSize = input.expectedSize;
    writer = new PartWriter({
      s3: input.s3,
      bucket: input.bucket,
      key: finalKey(fileId),
      contentType: keyring ? 'application/octet-stream' : undefined,
      metadata,
      expectedSize: expectedSize === undefined ? undefined : keyring ? cipherSize(expectedSize, DEFAULT_FRAME_SIZE) : expectedSize,
      // Sealed frames authenticate themselves; plaintext stored in the clear keeps its signed payload.
      unsignedPayload: keyring !== undefined,
    });
    const append = writer.append;

    source = await opening;
    if (signal?.aborted) throw signal.reason;
    let encryptMs = 0;
    const sealedFrames: Buffer[] = [];
    const collect = (sealed: Buffer) => void sealedFrames.push(sealed);
    const seal = (piece: Buffer): Promise<void> | undefined => {
      if (encryptor) {
        // The frames are copied into the parts after the clock stops: the metric is the cipher's time alone.
        const started = performance.now();
        encryptor.write(piece, collect);
        encryptMs += performance.now() - started;
        for (const frame of sealedFrames) append(frame);
        sealedFrames.length = 0;
      } else {
        append(piece);
      }
      return writer!.busy ? writer!.ready() : undefined;
    };
    // The source's chunks straight into the loop: a pipeline resumes a paused source, fails on a
    // closed or failed one, and stops everything when the signal aborts.
    await pipeline(
      source,
      pieceSink((piece) => {
        const behind = inspector.write(piece);
        return behind ? behind.then(() => seal(piece)) : seal(piece);
      }),
      { signal },
    );
    const inspected = await inspector.end();
    encryptor?.end(append);
    if (input.declaredSha256 !== undefined && input.declaredSha256 !== inspected.sha256) {
      throw new UploadRejection('content does not match the declared SHA-256', 'sha256_mismatch');
    }
    await writer.complete(signal);
    return {
      sha256: inspected.sha256,
      size: inspected.size,
      storedSize: writer.size,
      encrypted: keyring !== undefined,
      frameSize: keyring ? DEFAULT_FRAME_SIZE : undefined,
      encryptMs,
      sealId,
      audio: inspected.audio,
    };
  } catch (error) {
    inspector.abort();
    // A source not opened yet is closed once it opens: its connection must not linger.
    if (source) source.destroy();
    else void opening.then((opened) => opened.destroy(), () => undefined);
    await writer?.abort();
    // Whoever aborted decides what becomes of the file (it may be another run's by now).
    if (signal?.aborted) throw signal.reason;
    if (error instanceof UploadRejection) throw error;
    throw toStorageError(error, 'storeObject', fileId);
  }
}

/** The most plaintext handled between two looks at the writer: a part can fill at most once per piece. */
const PIECE = 1024 * 1024;

/**
 * A sink that hands each chunk (cut to PIECE at most) to `handle`, taking the next only once a
 * returned promise has settled. A Writable rather than an async iterator: the iterator's read()
 * joins whatever is buffered into a new buffer, a copy of every byte. It takes bytes only:
 * strings and Uint8Arrays become Buffers, anything else fails the write.
 */
function pieceSink(handle: (piece: Buffer) => Promise<void> | undefined): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      const from = (start: number): void => {
        for (let at = start; at < chunk.length; at += PIECE) {
          let pending: Promise<void> | undefined;
          try {
            pending = handle(chunk.length <= PIECE ? chunk : chunk.subarray(at, at + PIECE));
          } catch (error) {
            return done(error as Error);
          }
          if (pending) return void pending.then(() => from(at + PIECE), done);
        }
        done();
      };
      from(0);
    },
  });
}

/** What the manifest records of a sealed recording. */
export function storedAttributes(sealed: SealResult): NonNullable<Manifest['stored']> {
  return {
    sha256: sealed.sha256,
    size: sealed.size,
    storedSize: sealed.storedSize,
    encrypted: sealed.encrypted,
    sealId: sealed.sealId,
    ...(sealed.frameSize === undefined ? {} : { frameSize: sealed.frameSize }),
  };
}
