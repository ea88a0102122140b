import {
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type ListMultipartUploadsCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { backend, backendCode } from './backend-errors.ts';

/** Paged listings the sweep walks; each page is one request, mapped into the catalogue on failure. */

export interface ListedObject {
  key: string;
  lastModified: Date;
  size: number;
}

export interface ListedMultipartUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

export async function* listObjects(s3: S3Client, bucket: string, prefix: string): AsyncGenerator<ListedObject> {
  let ContinuationToken: string | undefined;
  do {
    const page = await backend('listObjects', undefined, () =>
      s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken })),
    );
    for (const object of page.Contents ?? []) {
      if (object.Key === undefined) continue;
      yield { key: object.Key, lastModified: object.LastModified ?? new Date(0), size: object.Size ?? 0 };
    }
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken);
}

/**
 * Multipart uploads under way whose key starts with `prefix`. MinIO lists them for a whole
 * bucket or for one exact key, never by prefix (S3 does), so the prefix is applied here. A
 * server that does not implement the listing (the embedded emulator) has none to list.
 */
export async function* listMultipartUploads(s3: S3Client, bucket: string, prefix: string): AsyncGenerator<ListedMultipartUpload> {
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  do {
    const page = await backend('listMultipartUploads', undefined, () =>
      s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker, UploadIdMarker })).catch((error: unknown) => {
        if (backendCode(error) === 'NotImplemented') return { $metadata: {}, Uploads: [], IsTruncated: false } satisfies ListMultipartUploadsCommandOutput;
        throw error;
      }),
    );
    for (const upload of page.Uploads ?? []) {
      if (upload.Key === undefined || upload.UploadId === undefined || !upload.Key.startsWith(prefix)) continue;
      yield { key: upload.Key, uploadId: upload.UploadId, initiated: upload.Initiated ?? new Date(0) };
    }
    const more = page.IsTruncated === true;
    KeyMarker = more ? page.NextKeyMarker : undefined;
    UploadIdMarker = more ? page.NextUploadIdMarker : undefined;
  } while (KeyMarker);
}
