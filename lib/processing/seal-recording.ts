import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { AudioExtension } from '../audio-formats.ts';
import type { Keyring } from '../crypto/keyring.ts';
import {
  DEFAULT_FRAME_SIZE,
  FORMAT_VERSION,
  createEncryptStream,
  encodeEncryptionMetadata,
  newNoncePrefix,
} from '../crypto/frame-format.ts';
import { toStorageError } from '../storage/backend-errors.ts';
import type { Manifest } from '../storage/manifest.ts';
import { finalKey, SEAL_ID_METADATA } from '../storage/object-layout.ts';
import type { AudioDescription } from './audio-check.ts';
import { UploadInspector, UploadRejection } from './upload-inspector.ts';
import { timeTransform } from './transform-timer.ts';

/**
 * One streaming pass from a plaintext source to the final object:
 *   source → inspect (size, SHA-256, magic bytes, audio structure and metadata) → encrypt (framed AES-256-GCM) → multipart upload.
 * Memory stays bounded by the upload's part buffers, whatever the file's size.
 * A content problem surfaces as `UploadRejection` and leaves no final object behind.
 */

export interface SealInput {
  s3: S3Client;
  bucket: string;
  fileId: string;
  source: Readable;
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

export const PART_SIZE = 5 * 1024 * 1024;
export const QUEUE_SIZE = 4;

export async function sealRecording(input: SealInput): Promise<SealResult> {
  const inspector = new UploadInspector({
    extension: input.extension,
    expectedSize: input.expectedSize,
    maxSize: input.maxSize,
  });
  const stages: NodeJS.ReadWriteStream[] = [inspector];
  // The seal id ties this object to the manifest that describes it (see read-content.ts).
  const sealId = randomBytes(16).toString('base64url');
  const metadata: Record<string, string> = { 'file-id': input.fileId, [SEAL_ID_METADATA]: sealId };
  let encryptTimer: { elapsedMs: () => number } | undefined;

  if (input.keyring) {
    const { dataKey, kekId, wrappedKey } = await input.keyring.newDataKey();
    const noncePrefix = newNoncePrefix();
    const encryptor = createEncryptStream({ dataKey, noncePrefix, frameSize: DEFAULT_FRAME_SIZE, fileId: input.fileId });
    dataKey.fill(0);
    encryptTimer = timeTransform(encryptor);
    stages.push(encryptor);
    Object.assign(
      metadata,
      encodeEncryptionMetadata({ version: FORMAT_VERSION, kekId, wrappedKey, noncePrefix, frameSize: DEFAULT_FRAME_SIZE }),
    );
  }

  let storedSize = 0;
  const body = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      storedSize += chunk.length;
      callback(null, chunk);
    },
  });
  const flowing = pipeline([input.source, ...stages, body] as NodeJS.ReadWriteStream[]);
  const upload = new Upload({
    client: input.s3,
    params: {
      Bucket: input.bucket,
      Key: finalKey(input.fileId),
      Body: body,
      ContentType: input.keyring ? 'application/octet-stream' : undefined,
      Metadata: metadata,
    },
    partSize: PART_SIZE,
    queueSize: QUEUE_SIZE,
    leavePartsOnError: false,
  });

  const onAbort = () => {
    void upload.abort().catch(() => undefined);
    body.destroy(input.signal?.reason as Error);
  };
  if (input.signal?.aborted) onAbort();
  input.signal?.addEventListener('abort', onAbort, { once: true });

  // A failed upload stops reading its body; destroying it ends the pipeline instead of stalling it.
  const uploading = upload.done().catch((error: unknown) => {
    body.destroy(error as Error);
    throw error;
  });
  const [piped, uploaded] = await Promise.allSettled([flowing, uploading]);
  input.signal?.removeEventListener('abort', onAbort);
  // Whoever aborted decides what becomes of an object that completed anyway (it may be another run's by now).
  if (input.signal?.aborted) throw input.signal.reason;
  const failure = [piped, uploaded].find((r) => r.status === 'rejected' && r.reason instanceof UploadRejection) ??
    [piped, uploaded].find((r) => r.status === 'rejected');
  if (failure?.status === 'rejected') {
    if (uploaded.status === 'fulfilled') await deleteQuietly(input);
    if (failure.reason instanceof UploadRejection) throw failure.reason;
    throw toStorageError(failure.reason, 'storeObject', input.fileId);
  }

  const inspected = inspector.result!;
  if (input.declaredSha256 !== undefined && input.declaredSha256 !== inspected.sha256) {
    await deleteQuietly(input);
    throw new UploadRejection('content does not match the declared SHA-256', 'sha256_mismatch');
  }
  return {
    sha256: inspected.sha256,
    size: inspected.size,
    storedSize,
    encrypted: input.keyring !== undefined,
    frameSize: input.keyring ? DEFAULT_FRAME_SIZE : undefined,
    encryptMs: encryptTimer?.elapsedMs() ?? 0,
    sealId,
    audio: inspected.audio,
  };
}

async function deleteQuietly(input: SealInput): Promise<void> {
  await input.s3
    .send(new DeleteObjectCommand({ Bucket: input.bucket, Key: finalKey(input.fileId) }))
    .catch(() => undefined);
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
