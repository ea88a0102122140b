import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import {
  FileIdInUseError,
  StorageFileCorruptedError,
  StorageFileNotFoundError,
  StorageFileSizeError,
  StorageFileNotReadyError,
  StorageMetadataError,
  StorageOperationError,
  ValidationError,
} from '../errors/catalogue.ts';
import { signPlaybackLink } from '../auth/playback-link.ts';
import { ConfigError, requireSecrets } from '../config.ts';
import { decodeEncryptionMetadata } from '../crypto/frame-format.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { logger } from '../observability/logger.ts';
import { measured, recordBytesRead, recordLateFailure } from '../observability/metrics.ts';
import { Lease } from '../processing/lease.ts';
import { commitRecording } from '../processing/commit-recording.ts';
import { sealRecording } from '../processing/seal-recording.ts';
import { UploadRejection } from '../processing/upload-inspector.ts';
import { presignPost, presignPut, type PresignedUpload } from '../upload/presign.ts';
import { MultipartUploads, partLayout, type PartLayout, type S3RequestToSign } from '../upload/multipart-upload.ts';
import { parseUploadRequest, type UploadRequest } from '../upload/upload-request.ts';
import { backend } from '../storage/backend-errors.ts';
import { confirmQuota, recordUsage, releaseQuota } from '../storage/file-accounting.ts';
import { abortUpload, removeStoredObject, removeUpload } from '../storage/file-objects.ts';
import { isSettled, type FileStatus, type Manifest, type VersionedManifest } from '../storage/manifest.ts';
import { finalKey, incomingKey, isFileId } from '../storage/object-layout.ts';
import { boundRange, resolveRange, type ByteRange, type RangeRequest } from '../byte-range.ts';
import { assertSameSeal, openPlaintext, prefetchFrames } from './read-content.ts';
import { fetchRecording, ReadyManifests, type ReadyManifest } from './ready-manifests.ts';
import { describeStoredObject, openSealedExport, type SealedExport } from './sealed-export.ts';
import { OwnerQuotas } from '../storage/owner-quotas.ts';
import { deletedEntry, ensureRecordingCurrent, finishDeletion, forgetDeletion, idEverUsed, lastManifest, listDeleted, purgeVersions, recordDeletion, recoveryEnabled, undeleteManifest, undeleteRecording } from '../storage/recovery.ts';
import { UsageLedger } from '../storage/usage-ledger.ts';
import { sharedStorageContext, type StorageContext } from '../storage/storage-context.ts';

/**
 * The storage service: the library API that backends call and that the functions are thin
 * wrappers of. Every operation names its owner; a file of another owner is reported as not
 * found, exactly like a file that does not exist, so ids cannot be probed.
 */

export interface FileInfo {
  fileId: string;
  status: FileStatus;
  filename: string;
  contentType: string;
  /** Plaintext bytes: measured once ready, declared before. */
  size: number;
  /** SHA-256 of the plaintext: measured once ready, declared (or null) before. */
  sha256: string | null;
  encrypted: boolean;
  createdAt: string;
  updatedAt: string;
  reason?: string;
  metadata?: Record<string, string>;
  /** What processing found in the recording, once ready: duration, codec, sample rate, channels. */
  audio?: AudioInfo;
}

export interface AudioInfo {
  durationSeconds: number;
  /** As the parser names it: "PCM", "MPEG 1 Layer 3", "MPEG-4/AAC"... */
  codec: string;
  sampleRate: number;
  channels: number;
  /** Average bits per second, when known. */
  bitrate?: number;
}

/** A deleted file that can still be restored (`restoreFile`): its last attributes, and its window. */
export type DeletedFileInfo = Omit<FileInfo, 'status' | 'updatedAt'> & { deletedAt: string; restorableUntil: string };

export interface CreatedUpload {
  fileId: string;
  status: FileStatus;
  upload: PresignedUpload | ({ method: 'MULTIPART' } & PartLayout);
  expiresAt: string;
}

export interface StoreFileInput {
  /**
   * The caller's id for the file: a UUID (lowercase, as `crypto.randomUUID()` makes it), never a
   * path. One already in use, by any file of any owner, is refused with `FileIdInUseError` and
   * that file is left as it is. A new one is made when omitted.
   */
  fileId?: string;
  filename: string;
  contentType: string;
  size: number;
  sha256?: string;
  metadata?: Record<string, string>;
  /**
   * Whether to encrypt at rest; by default what the deployment does (`STORAGE_ENCRYPTION_ENABLED`).
   * It may state that, not overrule it: `true` where encryption is not configured is a
   * configuration error, and `false` where it is on is refused (no plaintext at rest).
   */
  encrypt?: boolean;
}

export interface FileContent {
  info: FileInfo;
  stream: Readable;
  /** The plaintext range served, when a range was asked for. */
  range: (ByteRange & { total: number }) | undefined;
  contentLength: number;
}

/** `getFile(…, { decrypt: false })`: the stored object as it is, and what opening it later takes besides the keys. */
export interface SealedFileContent {
  info: FileInfo;
  /** The stored bytes, whole: sealed frames for an encrypted file, the plaintext for one stored in the clear. */
  stream: Readable;
  /** What `openSealedExport` needs with the keys; never the data key itself (lib/service/sealed-export.ts). */
  sealed: SealedExport;
  range: undefined;
  /** Bytes of the stream (`sealed.storedSize`). */
  contentLength: number;
}

export interface GetFileOptions {
  range?: RangeRequest | readonly RangeRequest[];
  maxLength?: number;
  /** `false`: the stored bytes, sealed, with their description (`SealedFileContent`); whole files only. Default `true`. */
  decrypt?: boolean;
}

export interface PlaybackLink {
  fileId: string;
  /** Path and query of the link on the HTTP API: its token is in the query. */
  path: string;
  expiresAt: string;
}

export class StorageService {
  readonly #ctx: StorageContext;
  readonly #multipart: MultipartUploads;
  readonly #usage: UsageLedger;
  readonly #quotas: OwnerQuotas;
  /** Ready manifests read before, for reads with no manifest round trip (ready-manifests.ts): one cache per service, so per process. */
  readonly #readyManifests = new ReadyManifests();

  constructor(ctx: StorageContext) {
    this.#ctx = ctx;
    this.#multipart = new MultipartUploads(ctx);
    this.#usage = new UsageLedger(ctx.s3.internal, ctx.config.bucket);
    this.#quotas = new OwnerQuotas(ctx);
  }

  get config() {
    return this.#ctx.config;
  }

  /** What the service was built on (a new one is built when a secret rotates). */
  get context(): StorageContext {
    return this.#ctx;
  }

  /** Validates a client's upload request, records it, and returns a presigned upload for the incoming bucket. */
  createUpload(owner: string, body: unknown): Promise<CreatedUpload> {
    return measured('createUpload', async () => {
      const { config, s3, manifests } = this.#ctx;
      const request = parseUploadRequest(body, config);
      const fileId = randomUUID();
      const multipart = request.uploadMethod === 'MULTIPART';
      const manifest = newManifest(owner, fileId, request, 'awaiting_upload', multipart ? config.multipartUploadTtlSeconds : config.uploadUrlTtlSeconds);
      if (multipart) manifest.multipart = { partSize: partLayout(request.size, request.partSize).partSize };
      const expiresAt = manifest.uploadExpiresAt;
      // The owner's room first (lib/storage/owner-quotas.ts): refused, nothing is written. It is held
      // until the sweep would expire the file, and given back if the file is not created.
      await this.#quotas.reserve(owner, fileId, request.size, Date.parse(expiresAt) + config.sweep.uploadGraceSeconds * 1000, 'createUpload');
      try {
        // Marker first: a manifest never exists without one, so the sweep can expire it if no upload comes.
        await this.#ctx.pending.add(fileId);
        // A server-made UUID is new: an id in use here would be a broken random source, never to be written over.
        if ((await manifests.create(manifest)) === undefined) throw new FileIdInUseError('fileId is already in use.', { operation: 'createUpload', fileId });
      } catch (error) {
        await releaseQuota(this.#ctx, owner, fileId, 'createUpload');
        throw error;
      }
      if (multipart) {
        // Parts are signed on demand (POST /files/{id}/parts), each for the part's exact size.
        return { fileId, status: 'awaiting_upload', upload: { method: 'MULTIPART', ...partLayout(request.size, manifest.multipart!.partSize) }, expiresAt };
      }
      const presign = request.uploadMethod === 'PUT' ? presignPut : presignPost;
      const upload = await presign(s3.presign, {
        bucket: config.incomingBucket,
        key: incomingKey(fileId),
        size: request.size,
        contentType: request.uploadContentType,
        expiresInSeconds: config.uploadUrlTtlSeconds,
        fileId,
      });
      return { fileId, status: 'awaiting_upload', upload, expiresAt };
    });
  }

  /**
   * Stores a recording a backend already holds, through the same checks (and encryption, where
   * the deployment encrypts) as an uploaded one. A content problem throws `ValidationError`; it,
   * and every refusal below, leaves nothing of this call behind.
   *
   * A caller's `fileId` is taken by two conditional writes, never by a read: its pending marker
   * (pending-index.ts `claim`: refused while another file of that id is unsettled, or deleted with
   * leftovers the sweep has still to remove), then its manifest (`ManifestStore.create`, refused
   * while any manifest of that id exists). Of two calls with one id, exactly one wins both; the
   * other, and a call naming an existing file, get `FileIdInUseError` having written nothing of
   * the other file's, and removing nothing but the marker they claimed themselves.
   */
  storeFile(owner: string, content: Readable | Uint8Array, input: StoreFileInput): Promise<FileInfo> {
    return measured('storeFile', async () => {
      const { config, manifests, pending } = this.#ctx;
      const { fileId: chosenId, encrypt, ...declared } = input;
      if (chosenId !== undefined && (typeof chosenId !== 'string' || !isFileId(chosenId))) {
        throw new ValidationError('fileId must be a UUID in lowercase (as crypto.randomUUID() makes it); nothing was stored.', {
          operation: 'storeFile',
          details: { fileId: String(chosenId).slice(0, 64) },
        });
      }
      const request = parseUploadRequest({ ...declared, uploadMethod: 'POST' }, config);
      const fileId = chosenId ?? randomUUID();
      const keyring = this.#keyringToStore(encrypt, chosenId);
      // Sealed in this call, so it starts as processing with its one attempt under way, under a
      // lease renewed while the caller's stream flows (a slow one must not look like a dead run).
      const manifest: Manifest = {
        ...newManifest(owner, fileId, request, 'processing', 0),
        attempts: 1,
        leaseUntil: Lease.until(config.processing.leaseSeconds),
      };
      const inUse = () =>
        new FileIdInUseError('fileId is already in use by another file; nothing was stored, and that file is left as it is.', {
          operation: 'storeFile',
          fileId,
        });
      // A deleted file still restorable keeps its id, whoever its owner: restoring or purging it
      // must never find another file there. Any version of its manifest says the id was used.
      if (chosenId !== undefined && recoveryEnabled(this.#ctx) && (await idEverUsed(this.#ctx, fileId, 'storeFile'))) throw inUse();
      if (!(await pending.claim(fileId))) throw inUse();
      let etag: string | undefined;
      try {
        etag = await manifests.create(manifest);
      } finally {
        if (etag === undefined) await pending.remove(fileId).catch(() => undefined);
      }
      if (etag === undefined) throw inUse();
      // The owner's room, once the id is ours (a reservation made before could be another
      // file's entry of the same id, and giving it back would take that file's room away).
      const reservedUntil = Date.now() + (config.uploadUrlTtlSeconds + config.sweep.uploadGraceSeconds) * 1000;
      try {
        await this.#quotas.reserve(owner, fileId, request.size, reservedUntil, 'storeFile');
      } catch (error) {
        await manifests.delete(fileId).catch(() => undefined);
        await pending.remove(fileId).catch(() => undefined);
        throw error;
      }
      const removeObject = () => removeStoredObject(this.#ctx, fileId, 'storeFile');
      const lease = new Lease(manifests, { manifest, etag }, config.processing.leaseSeconds);
      let sealed;
      try {
        sealed = await sealRecording({
          s3: this.#ctx.s3.internal,
          bucket: config.bucket,
          fileId,
          source: content instanceof Readable ? content : Readable.from([Buffer.from(content)]),
          extension: request.extension,
          expectedSize: request.size,
          maxSize: config.maxFileSize,
          declaredSha256: request.sha256,
          keyring,
          signal: lease.signal,
        });
      } catch (error) {
        await lease.stop();
        // Deleted meanwhile: what this call wrote goes first, while the delete's marker still keeps the id from being taken again.
        if (lease.signal.aborted) await removeObject().catch(() => undefined);
        await manifests.delete(fileId).catch(() => undefined);
        await pending.remove(fileId).catch(() => undefined);
        await releaseQuota(this.#ctx, owner, fileId, 'storeFile');
        if (lease.signal.aborted) {
          throw new StorageFileNotFoundError('File was deleted while it was being stored.', { operation: 'storeFile', fileId });
        }
        if (error instanceof UploadRejection) {
          throw new ValidationError(`File rejected: ${error.message}.`, { operation: 'storeFile', fileId });
        }
        throw error;
      }
      let committed;
      try {
        committed = await commitRecording(this.#ctx, { owner, fileId, lease, sealed, operation: 'storeFile' });
      } finally {
        await lease.stop();
      }
      if (committed.outcome === 'over_quota') {
        // Over it at the commit: nothing is left behind, as for a content problem.
        await removeObject();
        await manifests.delete(fileId);
        await pending.remove(fileId);
        await releaseQuota(this.#ctx, owner, fileId, 'storeFile');
        throw committed.error;
      }
      if (committed.outcome === 'deleted') {
        throw new StorageFileNotFoundError('File was deleted while it was being stored.', { operation: 'storeFile', fileId });
      }
      if (committed.outcome === 'taken_over') {
        // Only the sweep takes a stored file over: its lease ran out (the caller's stream stalled
        // past it) and it ended failed. Nothing of this call stays, as for any other refusal.
        await removeObject();
        await manifests.delete(fileId).catch(() => undefined);
        await pending.remove(fileId).catch(() => undefined);
        await releaseQuota(this.#ctx, owner, fileId, 'storeFile');
        throw new StorageOperationError('Storing took longer than the processing lease; the file was given up. Store it again.', {
          operation: 'storeFile',
          fileId,
        });
      }
      // The marker stays if the file could not be counted as stored: the sweep counts it (owner-quotas.ts).
      if (committed.counted) await pending.remove(fileId);
      return toFileInfo(committed.manifest);
    });
  }

  getFileInfo(owner: string, fileId: string): Promise<FileInfo> {
    return measured('getFileInfo', async () => toFileInfo(await this.#ownedManifest(owner, fileId, 'getFileInfo')));
  }

  /** Plaintext size of a ready file. */
  getFileSize(owner: string, fileId: string): Promise<number> {
    return measured('getFileSize', async () => (await this.#readyManifest(owner, fileId, 'getFileSize')).stored.size);
  }

  /**
   * The plaintext as a stream, whole or for a byte range, with the file's info (metadata
   * included). A whole read fails its stream with `StorageFileCorruptedError` at the end if the
   * SHA-256 differs. Several ranges are served as the one range that covers them, and
   * `maxLength` shortens a range from its end: the range served (`content.range`) is what the
   * caller must announce.
   *
   * `decrypt: false` returns the stored object instead, whole and as it is in the bucket, with
   * `sealed`, what `openSealedExport` needs besides the keys to open it later (see
   * lib/service/sealed-export.ts). A range is refused then (`ValidationError`): an export is
   * opened whole, its SHA-256 checked; parts of a file are read decrypted.
   */
  getFile(owner: string, fileId: string, options?: GetFileOptions & { decrypt?: true }): Promise<FileContent>;
  getFile(owner: string, fileId: string, options: GetFileOptions & { decrypt: false }): Promise<SealedFileContent>;
  getFile(owner: string, fileId: string, options?: GetFileOptions): Promise<FileContent | SealedFileContent>;
  getFile(owner: string, fileId: string, options: GetFileOptions = {}): Promise<FileContent | SealedFileContent> {
    return measured('getFile', async () => {
      if (options.decrypt !== undefined && typeof options.decrypt !== 'boolean') {
        throw new ValidationError('decrypt must be true or false.', { operation: 'getFile' });
      }
      if (options.decrypt === false) return this.#exportStored(owner, fileId, options);
      const specs = options.range === undefined ? undefined : ([] as RangeRequest[]).concat(options.range);
      return (await this.#readWarm(owner, fileId, specs, options.maxLength)) ?? (await this.#readCold(owner, fileId, specs, options.maxLength));
    });
  }

  /**
   * A read with the file's ready manifest read before in this process: one GET of the stored
   * bytes, nothing else (ready-manifests.ts says why that is safe). Undefined when it cannot be
   * served so (not cached, another owner, a refusal to make, the recording changed or gone):
   * the full path decides then, from the manifest itself.
   */
  async #readWarm(owner: string, fileId: string, specs: RangeRequest[] | undefined, maxLength: number | undefined): Promise<FileContent | undefined> {
    const manifest = this.#readyManifests.get(fileId);
    if (manifest === undefined || manifest.owner !== owner) return undefined;
    const total = manifest.stored.size;
    let range: ByteRange | undefined;
    try {
      range = specs === undefined ? undefined : resolveRange(specs, total, fileId, maxLength);
    } catch {
      return undefined;
    }
    if (range === undefined && maxLength !== undefined && total > maxLength) return undefined;
    const fetched = await fetchRecording(this.#ctx, manifest, range);
    if (fetched === undefined) {
      this.#readyManifests.forget(fileId);
      return undefined;
    }
    return this.#serve(manifest, range, { fetched });
  }

  /** A read that starts from the manifest, with the frames a single range needs requested beside it. */
  async #readCold(owner: string, fileId: string, specs: RangeRequest[] | undefined, maxLength: number | undefined): Promise<FileContent> {
    const single = specs?.length === 1 ? boundRange(specs[0]!, maxLength) : undefined;
    const prefetch = single && isFileId(fileId) ? prefetchFrames(this.#ctx, fileId, single) : undefined;
    let manifest: ReadyManifest;
    let range: ByteRange | undefined;
    try {
      manifest = await this.#readyManifest(owner, fileId, 'getFile');
      range = specs === undefined ? undefined : resolveRange(specs, manifest.stored.size, fileId, maxLength);
    } catch (error) {
      prefetch?.discard();
      throw error;
    }
    const total = manifest.stored.size;
    if (range === undefined && maxLength !== undefined && total > maxLength) {
      // Refused here rather than by the response that cannot hold it, so that the refusal is
      // this call's error and the request is counted once (see lib/observability/metrics.ts).
      prefetch?.discard();
      throw new StorageFileSizeError(
        `The response would be ${total} bytes; this endpoint returns at most ${maxLength} bytes at once. Ask for byte ranges (Range: bytes=start-end).`,
        { operation: 'getFile', fileId, details: { contentLength: total, maxBytes: maxLength } },
      );
    }
    return this.#serve(manifest, range, { prefetch });
  }

  async #serve(manifest: ReadyManifest, range: ByteRange | undefined, source: Parameters<typeof openPlaintext>[3]): Promise<FileContent> {
    const total = manifest.stored.size;
    const contentLength = range ? range.end - range.start + 1 : total;
    const stream = await openPlaintext(this.#ctx, manifest, range, source);
    // The call has been counted by now: a body that fails while read is its error, not a second request.
    stream.once('error', (error) => recordLateFailure('getFile', error));
    recordBytesRead('getFile', contentLength);
    return { info: toFileInfo(manifest), stream, range: range && { ...range, total }, contentLength };
  }

  /** Signed URLs for parts of a resumable upload (see lib/upload/multipart-upload.ts). */
  presignParts(owner: string, fileId: string, partNumbers: readonly number[], uploadId?: string) {
    return measured('presignParts', async () =>
      this.#multipart.presignParts(await this.#ownedVersion(owner, fileId, 'presignParts'), partNumbers, uploadId),
    );
  }

  /** The parts of a resumable upload the storage server holds, for a client resuming. */
  listParts(owner: string, fileId: string) {
    return measured('listParts', async () => this.#multipart.listParts(await this.#ownedVersion(owner, fileId, 'listParts')));
  }

  /** Completes a resumable upload once every part is there; processing follows as for any upload. */
  completeUpload(owner: string, fileId: string): Promise<FileInfo> {
    return measured('completeUpload', async () => {
      const found = await this.#ownedVersion(owner, fileId, 'completeUpload');
      await this.#multipart.complete(found);
      return toFileInfo(found.manifest);
    });
  }

  /** Signs one S3 request of this file's upload for a client that sends it itself (Uppy 6's signRequest). */
  signS3Request(owner: string, fileId: string, request: S3RequestToSign) {
    return measured('signS3Request', async () => this.#multipart.signS3Request(await this.#ownedVersion(owner, fileId, 'signS3Request'), request));
  }

  /**
   * A playback link's token for a ready file: what `<audio src>` and other header-less clients
   * use (lib/auth/playback-link.ts). At most `STORAGE_PLAYBACK_LINK_TTL_SECONDS`, the default.
   */
  createPlaybackLink(owner: string, fileId: string, options: { expiresInSeconds?: number } = {}): Promise<PlaybackLink> {
    return measured('createPlaybackLink', async () => {
      requireSecrets(this.#ctx.config, ['jwtSecret']);
      const { maxTtlSeconds, key } = this.#ctx.config.playbackLinks;
      const ttl = options.expiresInSeconds ?? maxTtlSeconds;
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > maxTtlSeconds) {
        throw new ValidationError(`expiresIn must be a whole number of seconds from 1 to ${maxTtlSeconds}.`, { operation: 'createPlaybackLink', fileId });
      }
      await this.#readyManifest(owner, fileId, 'createPlaybackLink');
      const { token, expiresAt } = await signPlaybackLink(key!, owner, fileId, ttl);
      return { fileId, path: `/files/${fileId}/content?token=${token}`, expiresAt: expiresAt.toISOString() };
    });
  }

  /**
   * Opens an export of `getFile(…, { decrypt: false })` with this deployment's keys: the
   * plaintext, every frame authenticated and the SHA-256 checked (`StorageFileCorruptedError`
   * otherwise). Needs nothing of the file in storage: it may be long deleted. Elsewhere, with a
   * `Keyring` of the same keys, `openSealedExport` of lib/service/sealed-export.ts does the same.
   */
  openSealedExport(sealed: SealedExport, stored: Readable | Uint8Array): Promise<Readable> {
    return openSealedExport(sealed, stored, sealed?.encrypted === true ? this.#ctx.keyring : undefined);
  }

  /**
   * Removes the file: its recording, any pending or resumable upload, and its manifest; afterwards
   * it is not found. A `ready` file stays restorable for the recovery window (lib/storage/recovery.ts)
   * unless `purge` is set: then every version of it goes at once, and a file already deleted but
   * still restorable can be purged too. Answers whether there was something to delete.
   */
  deleteFile(owner: string, fileId: string, options: { purge?: boolean } = {}): Promise<boolean> {
    return measured('deleteFile', async () => {
      const found = await this.#ctx.manifests.read(checkedFileId(fileId, 'deleteFile'));
      this.#readyManifests.forget(fileId);
      const live = found?.manifest.owner === owner ? found.manifest : undefined;
      if (live !== undefined) {
        await this.#remove(owner, live);
        logger.info('file deleted', { fileId, status: live.status, restorable: live.status === 'ready' && recoveryEnabled(this.#ctx) });
      }
      // No manifest, but this owner's entry of a deleted file: a delete of it may have been cut
      // short before its recording went, which reads with a cached manifest would still serve
      // (ready-manifests.ts). The recording goes now; the answer stays that nothing was there.
      const earlier = found === undefined ? await deletedEntry(this.#ctx, owner, fileId, 'deleteFile') : undefined;
      if (earlier !== undefined) await finishDeletion(this.#ctx, fileId, 'deleteFile');
      if (options.purge !== true || !recoveryEnabled(this.#ctx)) return live !== undefined;
      // Another owner's file under this id: nothing of it is this caller's to purge.
      if (live === undefined && found !== undefined) return false;
      // The entry written by the delete just made, or by an earlier one: this owner's, or nothing is purged.
      const entry = found === undefined ? earlier : await deletedEntry(this.#ctx, owner, fileId, 'deleteFile');
      if (live === undefined && entry === undefined) return false;
      // A file deleted before it settled keeps its pending marker: a run may still complete its object, which the sweep then purges.
      await purgeVersions(this.#ctx, fileId, entry?.key, 'deleteFile', { keepPendingMarker: live !== undefined && !isSettled(live.status) });
      logger.info('file purged: no version of it is left', { fileId, wasDeleted: live === undefined });
      return true;
    });
  }

  /** The owner's deleted files that can still be restored, most recently deleted first. */
  listDeletedFiles(owner: string): Promise<DeletedFileInfo[]> {
    return measured('listDeletedFiles', async () => {
      const entries = await listDeleted(this.#ctx, owner);
      const files: DeletedFileInfo[] = [];
      for (const entry of entries) {
        const manifest = await lastManifest(this.#ctx, entry.fileId, 'listDeletedFiles').catch((error: unknown) => {
          // One deleted file whose manifest does not open is left out (and logged), not the owner's whole list.
          if (!(error instanceof StorageMetadataError)) throw error;
          logger.error('a deleted file is not listed: its manifest does not open', { fileId: entry.fileId, error });
          return undefined;
        });
        // A file restored meanwhile, or one whose versions are gone, is not listed.
        if (manifest === undefined || manifest.owner !== owner || manifest.status !== 'ready') continue;
        const { status: _status, updatedAt: _updated, ...info } = toFileInfo(manifest);
        files.push({ ...info, deletedAt: entry.deletedAt.toISOString(), restorableUntil: entry.restorableUntil.toISOString() });
      }
      return files;
    });
  }

  /**
   * Brings a deleted file back, `ready`, byte-identical, under the same fileId, while its recovery
   * window lasts. It counts against the owner's quota again (refused when there is no room).
   */
  restoreFile(owner: string, fileId: string): Promise<FileInfo> {
    return measured('restoreFile', async () => {
      const ctx = this.#ctx;
      const notFound = () => new StorageFileNotFoundError('No deleted file with this id can be restored.', { operation: 'restoreFile', fileId });
      const [entry, current] = await Promise.all([
        deletedEntry(ctx, owner, checkedFileId(fileId, 'restoreFile'), 'restoreFile'),
        ctx.manifests.read(fileId),
      ]);
      let manifest: Manifest;
      if (current !== undefined) {
        // Back already: a repeat (its answer lost), or a restore cut short, which the rest finishes.
        if (current.manifest.owner !== owner || current.manifest.status !== 'ready') throw notFound();
        if (entry === undefined) return toFileInfo(current.manifest);
        manifest = current.manifest;
        await undeleteRecording(ctx, manifest, 'restoreFile');
      } else {
        if (entry === undefined || entry.restorableUntil.getTime() <= Date.now()) throw notFound();
        const last = await lastManifest(ctx, fileId, 'restoreFile');
        if (last?.owner !== owner || last.status !== 'ready' || last.stored === undefined) throw notFound();
        manifest = last;
        await this.#quotas.reserve(owner, fileId, manifest.stored!.size, Date.now() + ctx.config.processing.leaseSeconds * 1000, 'restoreFile');
        try {
          // The recording first, the manifest last: what makes the file visible.
          await undeleteRecording(ctx, manifest, 'restoreFile');
          await undeleteManifest(ctx, fileId, 'restoreFile');
          // A retried delete that came between the two put a marker back on the recording (recovery.ts finishDeletion).
          await ensureRecordingCurrent(ctx, manifest, 'restoreFile');
        } catch (error) {
          await releaseQuota(this.#ctx, owner, fileId, 'restoreFile');
          throw error;
        }
      }
      // Counted again (each step idempotent, so a restore cut short is finished by the next), then the entry goes, last.
      const size = manifest.stored?.size ?? manifest.size;
      await confirmQuota(this.#ctx, owner, fileId, size, 'restoreFile');
      // A delete's change not folded yet would uncount the file once folded: it goes, and the file is added again.
      await this.#usage.withdraw('remove', fileId, 'restoreFile').catch(() => undefined);
      await recordUsage(this.#ctx, 'add', fileId, size, 'restoreFile');
      await forgetDeletion(ctx, owner, fileId, 'restoreFile');
      logger.info('file restored', { fileId, deletedAt: entry.deletedAt.toISOString() });
      return toFileInfo(manifest);
    });
  }

  async #remove(owner: string, manifest: Manifest): Promise<void> {
    const { fileId } = manifest;
    const { manifests, pending } = this.#ctx;
    const removeObjects = () =>
      Promise.all([
        removeStoredObject(this.#ctx, fileId, 'deleteFile'),
        removeUpload(this.#ctx, fileId, 'deleteFile'),
        manifest.multipart?.uploadId !== undefined && abortUpload(this.#ctx, fileId, manifest.multipart.uploadId, 'deleteFile'),
      ]);
    if (isSettled(manifest.status)) {
      if (manifest.status === 'ready' && recoveryEnabled(this.#ctx)) {
        // Restorable first, then the manifest, then the objects: a delete cut short anywhere is a
        // file listed and restored whole (recovery.ts), or purged when its window has passed.
        await recordDeletion(this.#ctx, owner, fileId, 'deleteFile');
        await manifests.delete(fileId);
        await removeObjects();
      } else {
        // Objects first, manifest last: a failure half-way leaves a manifest to retry the delete with.
        await removeObjects();
        await manifests.delete(fileId);
      }
      await releaseQuota(this.#ctx, owner, fileId, 'deleteFile');
      if (manifest.status === 'ready') await recordUsage(this.#ctx, 'remove', fileId, manifest.stored?.size ?? manifest.size, 'deleteFile');
      await pending.remove(fileId);
      return;
    }
    // A run may be at work. Its commit fails once the manifest is gone, and it then removes what
    // it wrote; but it may commit just before, and complete its object after the first removal:
    // so the objects go again after the manifest. The marker tells the sweep to look once more
    // later, for a run that died between writing its object and noticing the delete.
    await pending.markDeleted(fileId);
    await removeObjects();
    await manifests.delete(fileId);
    await releaseQuota(this.#ctx, owner, fileId, 'deleteFile');
    await removeObjects();
  }

  /** The stored object of a ready file, whole and as it is, with its description (getFile's `decrypt: false`). */
  async #exportStored(owner: string, fileId: string, options: GetFileOptions): Promise<SealedFileContent> {
    if (options.range !== undefined) {
      throw new ValidationError('decrypt: false exports the whole stored file; read ranges decrypted (decrypt: true).', {
        operation: 'getFile',
        ...(isFileId(fileId) && { fileId }),
      });
    }
    const manifest = await this.#readyManifest(owner, fileId, 'getFile');
    const { stored } = manifest;
    if (options.maxLength !== undefined && stored.storedSize > options.maxLength) {
      throw new StorageFileSizeError(`The stored file is ${stored.storedSize} bytes; at most ${options.maxLength} were asked for.`, {
        operation: 'getFile',
        fileId,
        details: { contentLength: stored.storedSize, maxBytes: options.maxLength },
      });
    }
    const out = await backend('getFile', fileId, () =>
      this.#ctx.s3.internal.send(new GetObjectCommand({ Bucket: this.#ctx.config.bucket, Key: finalKey(fileId) })),
    );
    const body = out.Body as Readable;
    assertSameSeal(out, stored, body, fileId);
    let sealed: SealedExport;
    try {
      if (out.ContentLength !== undefined && out.ContentLength !== stored.storedSize) {
        throw new StorageFileCorruptedError('Stored object is not of the size its manifest records.', { operation: 'getFile', fileId });
      }
      const encryption = stored.encrypted ? decodeEncryptionMetadata(out.Metadata ?? {}, fileId) : undefined;
      if (encryption !== undefined && encryption.frameSize !== stored.frameSize) {
        throw new StorageFileCorruptedError('Stored object and manifest disagree on the frame size.', { operation: 'getFile', fileId });
      }
      sealed = describeStoredObject(fileId, stored, encryption);
    } catch (error) {
      body.destroy();
      throw error;
    }
    body.once('error', (error) => recordLateFailure('getFile', error));
    recordBytesRead('getFile', stored.storedSize);
    return { info: toFileInfo(manifest), stream: body, sealed, range: undefined, contentLength: stored.storedSize };
  }

  /**
   * The keys a storeFile seals with: `encrypt` may state what the deployment does, never overrule
   * it (README, "Library API"). Undefined stores in the clear. Asked before anything is written.
   */
  #keyringToStore(encrypt: unknown, chosenId: string | undefined): Keyring | undefined {
    const context = { operation: 'storeFile', fileId: chosenId };
    if (encrypt !== undefined && typeof encrypt !== 'boolean') throw new ValidationError('encrypt must be true or false.', context);
    const enabled = this.#ctx.config.encryption.enabled;
    if (encrypt === true && !enabled) {
      throw new ConfigError(
        'Invalid storage configuration:\n  STORAGE_ENCRYPTION_ENABLED: is false, so storeFile cannot encrypt (encrypt: true; nothing was stored): set it to true, with STORAGE_ENCRYPTION_KEYS or STORAGE_ENCRYPTION_KMS_KEY_ID',
      );
    }
    if (encrypt === false && enabled) {
      throw new ValidationError(
        'This deployment stores no recording in the clear (STORAGE_ENCRYPTION_ENABLED is true): encrypt: false is refused, and nothing was stored.',
        context,
      );
    }
    // Where encryption is on and no keys are configured, this is the configuration error.
    return this.#ctx.keyring;
  }

  async #ownedManifest(owner: string, fileId: string, operation: string): Promise<Manifest> {
    return (await this.#ownedVersion(owner, fileId, operation)).manifest;
  }

  async #ownedVersion(owner: string, fileId: string, operation: string): Promise<VersionedManifest> {
    // Any read of a ready manifest serves later reads of its content (ready-manifests.ts); a
    // manifest gone, or one that no longer opens, takes what was kept of it away.
    const found = await this.#ctx.manifests.read(checkedFileId(fileId, operation)).catch((error: unknown) => {
      this.#readyManifests.forget(fileId);
      throw error;
    });
    if (found === undefined) this.#readyManifests.forget(fileId);
    else this.#readyManifests.remember(found.manifest);
    if (found === undefined || found.manifest.owner !== owner) {
      throw new StorageFileNotFoundError('File not found.', { operation, fileId });
    }
    return found;
  }

  async #readyManifest(owner: string, fileId: string, operation: string): Promise<ReadyManifest> {
    const manifest = await this.#ownedManifest(owner, fileId, operation);
    if (manifest.status !== 'ready') {
      throw new StorageFileNotReadyError(`File is ${manifest.status.replace('_', ' ')}; it has no content to serve.`, {
        operation,
        fileId,
        details: { status: manifest.status },
      });
    }
    if (manifest.stored === undefined) {
      throw new StorageMetadataError('File manifest lacks its stored attributes.', { operation, fileId });
    }
    return manifest as ReadyManifest;
  }
}

function checkedFileId(fileId: string, operation: string): string {
  if (!isFileId(fileId)) throw new ValidationError('fileId must be a UUID.', { operation, details: { fileId: fileId.slice(0, 64) } });
  return fileId;
}

function newManifest(
  owner: string,
  fileId: string,
  request: UploadRequest,
  status: FileStatus,
  uploadTtlSeconds: number,
): Manifest {
  const now = new Date();
  return {
    version: 1,
    fileId,
    owner,
    filename: request.filename,
    contentType: request.contentType,
    ...(request.uploadContentType !== undefined && request.uploadContentType !== request.contentType && { uploadContentType: request.uploadContentType }),
    extension: request.extension,
    size: request.size,
    ...(request.sha256 && { declaredSha256: request.sha256 }),
    ...(request.metadata && { metadata: request.metadata }),
    status,
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    uploadExpiresAt: new Date(now.getTime() + uploadTtlSeconds * 1000).toISOString(),
    attempts: 0,
  };
}

export function toFileInfo(manifest: Manifest): FileInfo {
  return {
    fileId: manifest.fileId,
    status: manifest.status,
    filename: manifest.filename,
    contentType: manifest.contentType,
    size: manifest.stored?.size ?? manifest.size,
    sha256: manifest.stored?.sha256 ?? manifest.declaredSha256 ?? null,
    encrypted: manifest.stored?.encrypted ?? false,
    createdAt: manifest.createdAt,
    updatedAt: manifest.updatedAt,
    ...(manifest.reason !== undefined && { reason: manifest.reason }),
    // Copies: the manifest may be a cached one (ready-manifests.ts), which a caller's edit must not change.
    ...(manifest.metadata !== undefined && { metadata: { ...manifest.metadata } }),
    ...(manifest.audio !== undefined && { audio: { ...manifest.audio } }),
  };
}

let shared: StorageService | undefined;

/** The process's service, built from the environment on first use. */
export function storageService(): StorageService {
  const ctx = sharedStorageContext();
  if (shared?.context !== ctx) shared = new StorageService(ctx);
  return shared;
}
