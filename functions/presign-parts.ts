import { httpFunction, json, pathFileId, requestBody } from '../lib/http/http-function.ts';
import { storageService } from '../lib/service/storage-service.ts';
import { partsRequestSchema } from '../lib/upload/upload-request.ts';

/** POST /files/{fileId}/parts — signed URLs for parts of a resumable upload, each for its exact size. */
export const handler = httpFunction('presignParts', async (event, context) => {
  const { partNumbers, uploadId } = requestBody(event, partsRequestSchema, 'presignParts');
  return json(200, await storageService().presignParts(context.owner, pathFileId(event), partNumbers, uploadId));
});
