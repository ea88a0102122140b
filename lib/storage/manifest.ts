import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import type { Keyring } from '../crypto/keyring.ts';
import { openManifest, sealManifest, SEALED_MANIFEST_VERSION } from '../crypto/manifest-seal.ts';
import { StorageMetadataError, StorageOperationError } from '../errors/catalogue.ts';
import { backend, createIfAbsent, isNotFound, isPreconditionFailed, toStorageError } from './backend-errors.ts';
import { manifestKey } from './object-layout.ts';

/**
 * S3 is the only database: each file has a small JSON manifest beside its object. Every
 * change of status is a conditional write (If-Match on the ETag read), so two deliveries of
 * the same event, or a delete racing a processing run, can never both win. Where encryption
 * is on, a manifest is stored sealed (lib/crypto/manifest-seal.ts): its personal fields
 * encrypted, all of it authenticated.
 */

/**
 * Where a file can be, and what moves it on (README, "File states"):
 *   awaiting_upload → processing (its upload's event, or the sweep) | expired (never uploaded)
 *   processing      → ready | rejected | failed; taken over when its lease runs out
 *   failed          → processing (a redrive of its dead letter)
 *   ready, rejected, expired: settled.
 */
export const FILE_STATUSES = ['awaiting_upload', 'processing', 'ready', 'rejected', 'failed', 'expired'] as const;
export type FileStatus = (typeof FILE_STATUSES)[number];
const SETTLED_STATUSES: readonly (FileStatus | undefined)[] = ['ready', 'rejected', 'expired'];

/** Nothing more will happen to the file but a delete. */
export function isSettled(status: FileStatus | undefined): boolean {
  return SETTLED_STATUSES.includes(status);
}

const manifestSchema = z.object({
  version: z.literal(1),
  fileId: z.string(),
  owner: z.string(),
  filename: z.string(),
  contentType: z.string(),
  /** What the client said it sends with its upload, when that is not `contentType` itself (a generic type), or none. */
  uploadContentType: z.string().optional(),
  extension: z.enum(['mp3', 'wav', 'm4a']),
  size: z.number().int().nonnegative(),
  declaredSha256: z.string().optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  status: z.enum(FILE_STATUSES),
  reason: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  uploadExpiresAt: z.string(),
  attempts: z.number().int().nonnegative(),
  /** A resumable upload (lib/upload/multipart-upload.ts): its part size, and its one S3 upload once bound. */
  multipart: z.object({ partSize: z.number().int().positive(), uploadId: z.string().optional() }).optional(),
  leaseUntil: z.string().optional(),
  stored: z
    .object({
      sha256: z.string(),
      size: z.number().int().nonnegative(),
      storedSize: z.number().int().nonnegative(),
      encrypted: z.boolean(),
      /** The stored object's seal-id metadata (object-layout.ts); absent only in manifests of version 1. */
      sealId: z.string().optional(),
      frameSize: z.number().int().positive().optional(),
    })
    .optional(),
  /** What processing found in the recording (lib/processing/audio-check.ts), once ready. */
  audio: z
    .object({
      durationSeconds: z.number().nonnegative(),
      codec: z.string(),
      sampleRate: z.number().int().positive(),
      channels: z.number().int().positive(),
      bitrate: z.number().int().nonnegative().optional(),
    })
    .optional(),
});

export type Manifest = z.infer<typeof manifestSchema>;

export interface VersionedManifest {
  manifest: Manifest;
  etag: string;
  /** The KEK its seal is wrapped with; undefined for a manifest stored in the clear (version 1). */
  kekId?: string | undefined;
}

/** Pauses before reading a manifest again that did not parse or authenticate (see `read`). */
const TORN_READ_RETRY_DELAYS_MS = [50, 250];

export class ManifestStore {
  readonly #s3: S3Client;
  readonly #bucket: string;
  readonly #keyring: () => Keyring | undefined;

  /** `keyring` gives the keys that seal manifests, or undefined where encryption is off. */
  constructor(s3: S3Client, bucket: string, keyring: () => Keyring | undefined) {
    this.#s3 = s3;
    this.#bucket = bucket;
    this.#keyring = keyring;
  }

  /**
   * Writes a new manifest only if none exists for that fileId (If-None-Match: *): the one arbiter
   * of who owns an id, whoever chose it. Returns the ETag, or undefined when one exists already
   * (then nothing was written).
   */
  async create(manifest: Manifest): Promise<string | undefined> {
    const body = await this.#encode(manifest);
    const out = await createIfAbsent(() => this.#send(manifest.fileId, body, { IfNoneMatch: '*' }), 'createManifest', manifest.fileId);
    return out === undefined ? undefined : (out.ETag ?? '');
  }

  /**
   * `unsealed: 'accept'` reads a clear (version 1) manifest where manifests are sealed: for `npm run rotate-keys` only, which seals it.
   * `versionId` reads an older version in the versioned final bucket (a deleted file's, lib/storage/recovery.ts).
   */
  async read(fileId: string, options: { unsealed?: 'accept'; versionId?: string } = {}): Promise<VersionedManifest | undefined> {
    // A store that writes an object in place (the embedded emulator truncates, then writes) can
    // serve a manifest half written: a read that does not parse or authenticate is tried again
    // before the manifest is called damaged. S3 and MinIO replace objects atomically, so there
    // a retry only delays the answer about a manifest that really is damaged.
    for (const delayMs of TORN_READ_RETRY_DELAYS_MS) {
      try {
        return await this.#readOnce(fileId, options);
      } catch (error) {
        if (!(error instanceof StorageMetadataError) || error.details.torn !== true) throw error;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
    return this.#readOnce(fileId, options);
  }

  async #readOnce(fileId: string, options: { unsealed?: 'accept'; versionId?: string }): Promise<VersionedManifest | undefined> {
    let body: string;
    let etag: string;
    try {
      const out = await this.#s3.send(new GetObjectCommand({ Bucket: this.#bucket, Key: manifestKey(fileId), VersionId: options.versionId }));
      body = (await out.Body?.transformToString('utf8')) ?? '';
      etag = out.ETag ?? '';
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw toStorageError(error, 'readManifest', fileId);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new StorageMetadataError('File manifest is unreadable.', { operation: 'readManifest', fileId, details: { torn: true } });
    }
    const keyring = this.#keyring();
    let kekId: string | undefined;
    const stored = parsed as { version?: unknown } | null;
    if (stored?.version === SEALED_MANIFEST_VERSION) {
      if (keyring === undefined) {
        throw new StorageOperationError('File manifest is sealed but no encryption keys are configured.', { operation: 'readManifest', fileId });
      }
      try {
        ({ manifest: parsed, kekId } = await openManifest(stored as Record<string, unknown>, keyring, fileId));
      } catch (error) {
        if (error instanceof StorageMetadataError) error.details.torn = true;
        throw error;
      }
    } else if (keyring !== undefined && options.unsealed !== 'accept') {
      // A clear manifest where manifests are sealed is either from before sealing or an edit: never trusted.
      throw new StorageMetadataError('File manifest is not sealed (npm run rotate-keys seals older manifests).', { operation: 'readManifest', fileId });
    }
    const result = manifestSchema.safeParse(parsed);
    if (!result.success || result.data.fileId !== fileId) {
      throw new StorageMetadataError('File manifest is invalid.', {
        operation: 'readManifest',
        fileId,
        details: { issues: result.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) },
      });
    }
    return { manifest: result.data, etag, kekId };
  }

  /**
   * Replaces the manifest only if it is still the version read (`etag`). Returns the new
   * ETag, or undefined when someone else changed or deleted it first.
   */
  async replace(manifest: Manifest, etag: string): Promise<string | undefined> {
    try {
      return await this.#put(manifest, { IfMatch: etag }, 'updateManifest', true);
    } catch (error) {
      if (isPreconditionFailed(error) || isNotFound(error)) return undefined;
      throw toStorageError(error, 'updateManifest', manifest.fileId);
    }
  }

  async delete(fileId: string): Promise<void> {
    await backend('deleteManifest', fileId, () =>
      this.#s3.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: manifestKey(fileId) })),
    );
  }

  async #put(
    manifest: Manifest,
    condition: { IfMatch?: string; IfNoneMatch?: string },
    operation: string,
    raw = false,
  ): Promise<string> {
    const body = await this.#encode(manifest);
    const send = () => this.#send(manifest.fileId, body, condition);
    const out = raw ? await send() : await backend(operation, manifest.fileId, send);
    return out.ETag ?? '';
  }

  /** The manifest as stored: sealed where encryption is on. Its errors (no keys) are not the backend's. */
  async #encode(manifest: Manifest): Promise<string> {
    const keyring = this.#keyring();
    return JSON.stringify(keyring === undefined ? manifest : await sealManifest(manifest, keyring));
  }

  #send(fileId: string, body: string, condition: { IfMatch?: string; IfNoneMatch?: string }) {
    return this.#s3.send(
      new PutObjectCommand({ Bucket: this.#bucket, Key: manifestKey(fileId), Body: body, ContentType: 'application/json', ...condition }),
    );
  }
}
