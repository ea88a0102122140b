import { httpFunction, json, pathFileId } from '../lib/http/http-function.ts';
import { storageService } from '../lib/service/storage-service.ts';

/** GET /files/{fileId}/size — plaintext size of a ready file. */
export const handler = httpFunction('getFileSize', async (event, context) => {
  const fileId = pathFileId(event);
  return json(200, { fileId, size: await storageService().getFileSize(context.owner, fileId) });
});
