import { AbortMultipartUploadCommand, DeleteObjectCommand, HeadObjectCommand, type HeadObjectCommandInput, type HeadObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { backend, isNotFound, toStorageError } from './backend-errors.ts';
import { finalKey, incomingKey, SEAL_ID_METADATA } from './object-layout.ts';
import type { StorageContext } from './storage-context.ts';

/** A file's two objects, its upload (or resumable upload) and its stored recording, removed idempotently (gone already is fine). */

export function removeUpload(ctx: StorageContext, fileId: string, operation: string): Promise<unknown> {
  return backend(operation, fileId, () =>
    ctx.s3.internal.send(new DeleteObjectCommand({ Bucket: ctx.config.incomingBucket, Key: incomingKey(fileId) })),
  );
}

export function removeStoredObject(ctx: StorageContext, fileId: string, operation: string): Promise<unknown> {
  return backend(operation, fileId, () => ctx.s3.internal.send(new DeleteObjectCommand({ Bucket: ctx.config.bucket, Key: finalKey(fileId) })));
}

export async function abortUpload(ctx: StorageContext, fileId: string, uploadId: string, operation: string): Promise<void> {
  try {
    await ctx.s3.internal.send(new AbortMultipartUploadCommand({ Bucket: ctx.config.incomingBucket, Key: incomingKey(fileId), UploadId: uploadId }));
  } catch (error) {
    if (!isNotFound(error)) throw toStorageError(error, operation, fileId);
  }
}

/** HEAD of an object: its answer, or undefined when there is no such object (or its current version is a delete marker). */
export async function headObject(s3: S3Client, input: HeadObjectCommandInput, operation: string, fileId?: string): Promise<HeadObjectCommandOutput | undefined> {
  try {
    return await s3.send(new HeadObjectCommand(input));
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw toStorageError(error, operation, fileId);
  }
}

/** The seal id of the stored recording (the current one, or the version given); undefined when there is none. */
export async function storedSealId(ctx: StorageContext, fileId: string, operation: string, versionId?: string): Promise<string | undefined> {
  const head = await headObject(ctx.s3.internal, { Bucket: ctx.config.bucket, Key: finalKey(fileId), VersionId: versionId }, operation, fileId);
  return head?.Metadata?.[SEAL_ID_METADATA];
}
