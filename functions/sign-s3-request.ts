import { httpFunction, json, pathFileId, requestBody } from '../lib/http/http-function.ts';
import { storageService } from '../lib/service/storage-service.ts';
import { s3RequestSchema } from '../lib/upload/upload-request.ts';

/** POST /files/{fileId}/s3-requests — signs one S3 request of this file's upload, for clients that speak S3 (Uppy 6). */
export const handler = httpFunction('signS3Request', async (event, context) => {
  const { method, key, uploadId, partNumber } = requestBody(event, s3RequestSchema, 'signS3Request');
  return json(200, await storageService().signS3Request(context.owner, pathFileId(event), { method, key, uploadId, partNumber }));
});
