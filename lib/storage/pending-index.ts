import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { backend, createIfAbsent } from './backend-errors.ts';
import { listObjects } from './bucket-listing.ts';
import { fileIdFromPendingKey, PENDING_PREFIX, pendingKey } from './object-layout.ts';

const DELETED = 'deleted';

export interface PendingMarker {
  fileId: string;
  since: Date;
  deleted: boolean;
}

/**
 * The sweep's index of unsettled files, so that finding work never means listing every
 * recording. An empty object `pending/<fileId>` in the final bucket exists from before a file's
 * manifest is written until the file is settled and nothing of it can still be written:
 *
 * - creating an upload writes the marker first, then the manifest: there is never a manifest in
 *   flight without a marker; storing through the library does the same, but claims the marker
 *   (`claim`, a conditional write), since its caller may choose the id;
 * - a processing run removes it once the file is ready, rejected or failed and its upload has
 *   been dealt with; the sweep removes it when it expires a file that was never uploaded;
 * - deleting a file that is not settled rewrites the marker instead, so its date says when
 *   debris (an object completed by a run that had not yet noticed the delete) may last have
 *   been written; the sweep removes that debris and the marker once no run can still be writing.
 *
 * A marker left behind (a crash between two writes) costs one manifest read in a later sweep.
 */
export class PendingIndex {
  readonly #s3: S3Client;
  readonly #bucket: string;

  constructor(s3: S3Client, bucket: string) {
    this.#s3 = s3;
    this.#bucket = bucket;
  }

  async add(fileId: string): Promise<void> {
    await backend('markPending', fileId, () =>
      this.#s3.send(new PutObjectCommand({ Bucket: this.#bucket, Key: pendingKey(fileId), Body: '', ContentLength: 0 })),
    );
  }

  /**
   * Writes the marker only if there is none (If-None-Match: *): false when one exists, i.e. the
   * id belongs to a file not settled yet, or to one deleted before it settled whose leftovers the
   * sweep has still to remove. How a caller-chosen id (storeFile) is taken without touching
   * another file's marker.
   */
  async claim(fileId: string): Promise<boolean> {
    const put = () => this.#s3.send(new PutObjectCommand({ Bucket: this.#bucket, Key: pendingKey(fileId), Body: '', ContentLength: 0, IfNoneMatch: '*' }));
    return (await createIfAbsent(put, 'markPending', fileId)) !== undefined;
  }

  /** Rewrites the marker of a file being deleted before it settled (see above). */
  async markDeleted(fileId: string): Promise<void> {
    await backend('markPending', fileId, () =>
      this.#s3.send(new PutObjectCommand({ Bucket: this.#bucket, Key: pendingKey(fileId), Body: DELETED })),
    );
  }

  async remove(fileId: string): Promise<void> {
    await backend('clearPending', fileId, () =>
      this.#s3.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: pendingKey(fileId) })),
    );
  }

  /** Every marker, with the time it was last written and whether its file was deleted (told by its size: no read needed). */
  async *list(): AsyncGenerator<PendingMarker> {
    for await (const object of listObjects(this.#s3, this.#bucket, PENDING_PREFIX)) {
      const fileId = fileIdFromPendingKey(object.key);
      if (fileId !== undefined) yield { fileId, since: object.lastModified, deleted: object.size > 0 };
    }
  }
}
