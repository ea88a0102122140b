import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListPartsCommand,
  UploadPartCommand,
  type Part,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { StorageFileNotFoundError, UploadNotOpenError, ValidationError } from '../errors/catalogue.ts';
import { backend, httpStatusOf, isNotFound, toStorageError } from '../storage/backend-errors.ts';
import { headObject } from '../storage/file-objects.ts';
import type { Manifest, VersionedManifest } from '../storage/manifest.ts';
import { incomingKey } from '../storage/object-layout.ts';
import type { StorageContext } from '../storage/storage-context.ts';
import { presignPut, type PresignedUpload } from './presign.ts';

/**
 * Resumable uploads: an S3 multipart upload onto the file's own key, `uploads/<fileId>`, and
 * nothing else. How it fits together:
 *
 * - Layout. `POST /files` with `uploadMethod: MULTIPART` fixes the part size (8 MiB unless the
 *   client asks otherwise; at least S3's 5 MiB, and larger when 10,000 parts would not hold
 *   the file, the rule Uppy follows too). From the declared size and that part size, each part
 *   number has one exact size, and there are `partCount` of them.
 * - Binding. A file has at most one multipart upload, recorded in its manifest (`uploadId`) by
 *   a conditional write. Our own API creates it on the first request for parts; a client that
 *   speaks S3 itself (Uppy 6, through `signS3Request`) creates it with a signed request and the
 *   upload is bound the first time the client names it. Another upload id is refused.
 * - Bounds. Every part URL signs `Content-Length` with its part's exact size, and no part
 *   number past `partCount` is signed: the storage server itself refuses anything larger than
 *   declared. Completing through our API checks that every part is there at its size first.
 * - Afterwards. Completing creates the object, whose object-created event starts the same
 *   processing as any upload; processing checks size, type, hash. A client that walks away
 *   leaves an upload that the sweep aborts once the file's upload window and its grace have
 *   passed (the file is then `expired`), as the bucket's lifecycle rule does on AWS.
 */

const MiB = 1024 * 1024;
export const MIN_PART_SIZE = 5 * MiB;
export const MAX_PART_SIZE = 5 * 1024 * MiB;
export const MAX_PARTS = 10_000;
export const DEFAULT_PART_SIZE = 8 * MiB;

export interface PartLayout {
  partSize: number;
  partCount: number;
}

export function partLayout(size: number, requested = DEFAULT_PART_SIZE): PartLayout {
  let partSize = Math.min(Math.max(requested, MIN_PART_SIZE), MAX_PART_SIZE);
  if (Math.ceil(size / partSize) > MAX_PARTS) partSize = Math.ceil(size / MAX_PARTS);
  return { partSize, partCount: Math.max(1, Math.ceil(size / partSize)) };
}

/** The exact size of part `partNumber` (1-based) of a file of `size` bytes. */
export function sizeOfPart(partNumber: number, size: number, partSize: number): number {
  return Math.min(partSize, size - (partNumber - 1) * partSize);
}

export interface PresignedPart {
  partNumber: number;
  size: number;
  url: string;
}

export interface UploadedPart {
  partNumber: number;
  size: number;
  etag: string;
}

/** A request an S3-speaking client (Uppy 6's `signRequest`) wants signed. */
export interface S3RequestToSign {
  method: 'PUT' | 'POST' | 'GET' | 'DELETE';
  /** The key the client means to write; when given, it must be the file's own. */
  key?: string | undefined;
  uploadId?: string | undefined;
  partNumber?: number | undefined;
}

type Multipart = NonNullable<Manifest['multipart']>;

export class MultipartUploads {
  readonly #ctx: StorageContext;

  constructor(ctx: StorageContext) {
    this.#ctx = ctx;
  }

  /** Signed URLs for parts, creating (or taking up) the file's multipart upload. */
  async presignParts(found: VersionedManifest, partNumbers: readonly number[], uploadId?: string) {
    const { multipart, layout } = this.#open(found, 'presignParts');
    if (partNumbers.length === 0 || partNumbers.length > 100) {
      throw new ValidationError('Ask for 1 to 100 parts at a time.', { operation: 'presignParts', fileId: found.manifest.fileId });
    }
    for (const n of partNumbers) this.#checkPartNumber(found.manifest, layout, n, 'presignParts');
    const bound = await this.#bind(found, multipart, uploadId, 'presignParts');
    // A part URL never outlives the file's upload window: a part sent later could not be completed.
    const windowLeft = Math.floor((Date.parse(found.manifest.uploadExpiresAt) - Date.now()) / 1000);
    const expiresIn = Math.max(1, Math.min(this.#ctx.config.uploadUrlTtlSeconds, windowLeft));
    const parts = await Promise.all(
      [...new Set(partNumbers)].map(async (partNumber): Promise<PresignedPart> => {
        const size = sizeOfPart(partNumber, found.manifest.size, layout.partSize);
        return { partNumber, size, url: await this.#presignPart(found.manifest.fileId, bound, partNumber, size, expiresIn) };
      }),
    );
    return { uploadId: bound, ...layout, parts, expiresAt: new Date(Date.now() + expiresIn * 1000).toISOString() };
  }

  /** The parts the storage server holds so far, for a client resuming. */
  async listParts(found: VersionedManifest) {
    const { multipart, layout } = this.#open(found, 'listParts');
    const held = multipart.uploadId === undefined ? [] : await this.#partsHeld(found, multipart.uploadId, 'listParts');
    if (held === 'completed') {
      // Completed, its event not handled yet: every part is in the object, and a client re-running its loop sends none again.
      const parts = Array.from({ length: layout.partCount }, (_, i) => ({ partNumber: i + 1, size: sizeOfPart(i + 1, found.manifest.size, layout.partSize), etag: null }));
      return { uploadId: multipart.uploadId!, ...layout, completed: true, parts };
    }
    return { uploadId: multipart.uploadId ?? null, ...layout, completed: false, parts: held };
  }

  /** Checks that every part is there at its exact size, then completes the upload: processing follows its event. */
  async complete(found: VersionedManifest): Promise<void> {
    const { fileId, size } = found.manifest;
    const { multipart, layout } = this.#open(found, 'completeUpload');
    if (multipart.uploadId === undefined) {
      throw new ValidationError('No part has been uploaded yet.', { operation: 'completeUpload', fileId });
    }
    const parts = await this.#partsHeld(found, multipart.uploadId, 'completeUpload');
    // Completed already (a retry of a completion whose answer was lost): the same answer again.
    if (parts === 'completed') return;
    const byNumber = new Map(parts.map((p) => [p.partNumber, p]));
    const problems: string[] = [];
    for (let n = 1; n <= layout.partCount; n++) {
      const part = byNumber.get(n);
      const expected = sizeOfPart(n, size, layout.partSize);
      if (part === undefined) problems.push(`part ${n} is missing`);
      else if (part.size !== expected) problems.push(`part ${n} is ${part.size} bytes, not ${expected}`);
    }
    if (problems.length > 0) {
      throw new ValidationError(`The upload is not complete: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? '; …' : ''}.`, {
        operation: 'completeUpload',
        fileId,
        details: { missingOrWrong: problems.length },
      });
    }
    const Parts: Part[] = parts.filter((p) => p.partNumber <= layout.partCount).map((p) => ({ PartNumber: p.partNumber, ETag: p.etag }));
    await backend('completeUpload', fileId, () =>
      this.#ctx.s3.internal.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.#ctx.config.incomingBucket,
          Key: incomingKey(fileId),
          UploadId: multipart.uploadId,
          MultipartUpload: { Parts },
        }),
      ),
    );
  }

  /**
   * Signs one S3 request on the file's key for a client that sends it to the storage server
   * itself (Uppy 6). Only the requests of an upload are signed, each within the same bounds
   * as our own API: exact sizes, this file's key, its one multipart upload.
   */
  async signS3Request(found: VersionedManifest, request: S3RequestToSign): Promise<{ url: string; headers: Record<string, string> }> {
    const { manifest } = found;
    const { fileId } = manifest;
    const operation = 'signS3Request';
    const s3 = this.#ctx.s3.presign;
    const Bucket = this.#ctx.config.incomingBucket;
    const Key = incomingKey(fileId);
    const expiresIn = this.#ctx.config.uploadUrlTtlSeconds;
    const signed = (presign: () => Promise<string>) => backend(operation, fileId, presign);
    const { method, uploadId, partNumber } = request;
    if (request.key !== undefined && request.key !== Key) {
      throw new ValidationError(`This file's uploads go to ${Key} and nowhere else.`, { operation, fileId });
    }

    if (manifest.multipart === undefined) {
      if (method !== 'PUT' || uploadId !== undefined) {
        throw new ValidationError('This file was declared for a single upload: only PUT is signed for it.', { operation, fileId });
      }
      this.#checkOpen(manifest, operation);
      const put: PresignedUpload = await presignPut(s3, {
        bucket: Bucket,
        key: Key,
        size: manifest.size,
        contentType: manifest.uploadContentType,
        expiresInSeconds: expiresIn,
        fileId,
      });
      return { url: put.url, headers: put.headers ?? {} };
    }

    const { multipart, layout } = this.#open(found, operation);
    const contentType = manifest.uploadContentType ?? manifest.contentType;
    if (uploadId === undefined) {
      if (method !== 'POST') throw new ValidationError('This file was declared for a multipart upload: sign its parts.', { operation, fileId });
      if (multipart.uploadId !== undefined) {
        throw new ValidationError('This file already has a multipart upload; resume it (list its parts).', { operation, fileId });
      }
      return { url: await signed(() => getSignedUrl(s3, new CreateMultipartUploadCommand({ Bucket, Key, ContentType: contentType }), { expiresIn })), headers: { 'Content-Type': contentType } };
    }
    if (method === 'DELETE') {
      // Abandoning it: a later upload of this file may start afresh.
      if (multipart.uploadId === uploadId) await this.#unbind(found);
      return { url: await signed(() => getSignedUrl(s3, new AbortMultipartUploadCommand({ Bucket, Key, UploadId: uploadId }), { expiresIn })), headers: {} };
    }
    const bound = await this.#bind(found, multipart, uploadId, operation);
    if (method === 'PUT') {
      this.#checkPartNumber(manifest, layout, partNumber, operation);
      const size = sizeOfPart(partNumber!, manifest.size, layout.partSize);
      return { url: await this.#presignPart(fileId, bound, partNumber!, size, expiresIn), headers: {} };
    }
    if (method === 'GET') return { url: await signed(() => getSignedUrl(s3, new ListPartsCommand({ Bucket, Key, UploadId: bound }), { expiresIn })), headers: {} };
    return { url: await signed(() => getSignedUrl(s3, new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: bound }), { expiresIn })), headers: { 'Content-Type': 'application/xml' } };
  }

  #checkOpen(manifest: Manifest, operation: string): void {
    const { fileId, status } = manifest;
    if (status !== 'awaiting_upload') {
      throw new UploadNotOpenError(`The file is ${status.replace('_', ' ')}; it takes no more uploads.`, { operation, fileId, details: { status } });
    }
    if (Date.parse(manifest.uploadExpiresAt) <= Date.now()) {
      throw new UploadNotOpenError('The upload window of this file has closed; create the file again.', { operation, fileId });
    }
  }

  #open(found: VersionedManifest, operation: string): { multipart: Multipart; layout: PartLayout } {
    const { manifest } = found;
    this.#checkOpen(manifest, operation);
    if (manifest.multipart === undefined) {
      throw new ValidationError('This file was not declared with uploadMethod MULTIPART.', { operation, fileId: manifest.fileId });
    }
    return { multipart: manifest.multipart, layout: partLayout(manifest.size, manifest.multipart.partSize) };
  }

  #checkPartNumber(manifest: Manifest, layout: PartLayout, partNumber: number | undefined, operation: string): void {
    if (partNumber === undefined || !Number.isInteger(partNumber) || partNumber < 1 || partNumber > layout.partCount) {
      throw new ValidationError(`Part numbers run from 1 to ${layout.partCount} for this file.`, { operation, fileId: manifest.fileId });
    }
  }

  /** The file's one upload id: the bound one, or `proposed` (or a new one) bound now. */
  async #bind(found: VersionedManifest, multipart: Multipart, proposed: string | undefined, operation: string): Promise<string> {
    const { fileId } = found.manifest;
    if (multipart.uploadId !== undefined) {
      if (proposed !== undefined && proposed !== multipart.uploadId) {
        throw new ValidationError('uploadId is not this file\'s multipart upload.', { operation, fileId });
      }
      return multipart.uploadId;
    }
    if (proposed !== undefined && !/^[\w.=+/-]{1,1024}$/.test(proposed)) {
      throw new ValidationError('uploadId is malformed.', { operation, fileId });
    }
    const Bucket = this.#ctx.config.incomingBucket;
    const Key = incomingKey(fileId);
    // A client's own upload id is bound only if the storage server knows it on this key: a wrong one
    // bound would leave the file with an upload no part can join.
    if (proposed !== undefined) {
      try {
        await this.#ctx.s3.internal.send(new ListPartsCommand({ Bucket, Key, UploadId: proposed, MaxParts: 1 }));
      } catch (error) {
        const status = httpStatusOf(error);
        if (isNotFound(error) || (status !== undefined && status >= 400 && status < 500)) {
          throw new ValidationError('uploadId is not an upload of this file.', { operation, fileId });
        }
        throw toStorageError(error, operation, fileId);
      }
    }
    const uploadId =
      proposed ??
      (await backend(operation, fileId, () =>
        this.#ctx.s3.internal.send(
          new CreateMultipartUploadCommand({ Bucket, Key, ContentType: found.manifest.uploadContentType ?? found.manifest.contentType }),
        ),
      )).UploadId!;
    const written = await this.#ctx.manifests.replace(
      { ...found.manifest, multipart: { ...multipart, uploadId }, updatedAt: new Date().toISOString() },
      found.etag,
    );
    if (written !== undefined) return uploadId;
    // Another request bound one first (two part batches at once): use it, and drop ours.
    if (proposed === undefined) {
      await backend(operation, fileId, () => this.#ctx.s3.internal.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: uploadId })));
    }
    const now = await this.#ctx.manifests.read(fileId);
    const winner = now?.manifest.multipart?.uploadId;
    if (now === undefined || winner === undefined) throw new UploadNotOpenError('The file changed meanwhile; try again.', { operation, fileId });
    if (proposed !== undefined && proposed !== winner) throw new ValidationError('uploadId is not this file\'s multipart upload.', { operation, fileId });
    return winner;
  }

  async #unbind(found: VersionedManifest): Promise<void> {
    const { uploadId: _gone, ...multipart } = found.manifest.multipart!;
    await this.#ctx.manifests.replace({ ...found.manifest, multipart, updatedAt: new Date().toISOString() }, found.etag);
  }

  #presignPart(fileId: string, uploadId: string, partNumber: number, size: number, expiresIn: number): Promise<string> {
    return backend('presignParts', fileId, () =>
      getSignedUrl(
        this.#ctx.s3.presign,
        new UploadPartCommand({
          Bucket: this.#ctx.config.incomingBucket,
          Key: incomingKey(fileId),
          UploadId: uploadId,
          PartNumber: partNumber,
          ContentLength: size,
        }),
        // The storage server refuses a part of any other length: no part can be larger than declared.
        { expiresIn, signableHeaders: new Set(['content-length']) },
      ),
    );
  }

  /**
   * The parts of the bound upload, or `completed` when it has become the upload object. An upload
   * that is gone without an object was aborted (a client's signed abort, or the sweep): it is
   * unbound, so that the next request for parts starts a new one, and the caller is told.
   */
  async #partsHeld(found: VersionedManifest, uploadId: string, operation: string): Promise<UploadedPart[] | 'completed'> {
    const { fileId } = found.manifest;
    try {
      return await this.#uploadedParts(fileId, uploadId);
    } catch (error) {
      if (!(error instanceof StorageFileNotFoundError)) throw error;
    }
    const upload = await headObject(this.#ctx.s3.internal, { Bucket: this.#ctx.config.incomingBucket, Key: incomingKey(fileId) }, operation, fileId);
    if (upload !== undefined) return 'completed';
    await this.#unbind(found);
    throw new UploadNotOpenError('The multipart upload was aborted; ask for parts again to start a new one.', { operation, fileId });
  }

  async #uploadedParts(fileId: string, uploadId: string): Promise<UploadedPart[]> {
    const parts: UploadedPart[] = [];
    let marker: string | undefined;
    do {
      const out = await backend('listParts', fileId, () =>
        this.#ctx.s3.internal.send(
          new ListPartsCommand({ Bucket: this.#ctx.config.incomingBucket, Key: incomingKey(fileId), UploadId: uploadId, PartNumberMarker: marker }),
        ),
      );
      for (const p of out.Parts ?? []) parts.push({ partNumber: p.PartNumber!, size: p.Size!, etag: p.ETag! });
      marker = out.IsTruncated ? out.NextPartNumberMarker : undefined;
    } while (marker !== undefined);
    return parts;
  }
}
