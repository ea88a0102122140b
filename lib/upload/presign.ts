import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createPresignedPost } from '@aws-sdk/s3-presigned-post';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { backend } from '../storage/backend-errors.ts';

/**
 * Presigned uploads that the storage server itself enforces, so a client cannot send more
 * (or less) than it declared, another key, or another content type:
 * - POST: a policy with the exact key, `content-length-range` [size, size] and the content type;
 * - PUT: a URL whose signature covers `content-length` and `content-type`, so any other
 *   length or type fails the signature check.
 * Both are signed with the presign client, whose endpoint is the one the client reaches.
 */

export interface PresignedUpload {
  method: 'POST' | 'PUT';
  url: string;
  fields?: Record<string, string>;
  headers?: Record<string, string>;
}

export interface PresignInput {
  bucket: string;
  key: string;
  size: number;
  /** Pinned (POST) or signed (PUT) when the client declared one; a client that knows no type sends none. */
  contentType: string | undefined;
  expiresInSeconds: number;
  fileId: string;
}

export async function presignPost(s3: S3Client, input: PresignInput): Promise<PresignedUpload> {
  const { url, fields } = await backend('presignUpload', input.fileId, () =>
    createPresignedPost(s3, {
      Bucket: input.bucket,
      Key: input.key,
      Conditions: [
        ['content-length-range', input.size, input.size],
        ...(input.contentType === undefined ? [] : [['eq', '$Content-Type', input.contentType] as ['eq', string, string]]),
      ],
      Fields: input.contentType === undefined ? {} : { 'Content-Type': input.contentType },
      Expires: input.expiresInSeconds,
    }),
  );
  return { method: 'POST', url, fields };
}

export async function presignPut(s3: S3Client, input: PresignInput): Promise<PresignedUpload> {
  const url = await backend('presignUpload', input.fileId, () =>
    getSignedUrl(
      s3,
      new PutObjectCommand({
        Bucket: input.bucket,
        Key: input.key,
        ContentType: input.contentType,
        ContentLength: input.size,
      }),
      { expiresIn: input.expiresInSeconds, signableHeaders: new Set(input.contentType === undefined ? ['content-length'] : ['content-type', 'content-length']) },
    ),
  );
  return {
    method: 'PUT',
    url,
    // Content-Length is signed too, but clients cannot set it (browsers forbid it): the body's own length must match.
    headers: input.contentType === undefined ? {} : { 'Content-Type': input.contentType },
  };
}
