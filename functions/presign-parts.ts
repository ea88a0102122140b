import { httpFunction, json, jsonBody, pathFileId } from '../lib/http/http-function.ts';
import { storageService } from '../lib/storage/storage-service.ts';
import { parseBody, partsRequestSchema } from '../lib/upload/upload-request.ts';

/** POST /files/{fileId}/parts — signed URLs for parts of a resumable upload, each for its exact size. */
export const handler = httpFunction('presignParts', async (event, context) => {
  const { partNumbers, uploadId } = parseBody(partsRequestSchema, jsonBody(event, 'presignParts'), 'presignParts');
  return json(200, await storageService().presignParts(context.owner, pathFileId(event), partNumbers, uploadId));
});
