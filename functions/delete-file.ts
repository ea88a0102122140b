import { httpFunction, pathFileId } from '../lib/http/http-function.ts';
import { storageService } from '../lib/storage/storage-service.ts';

/** DELETE /files/{fileId} — removes every trace of the file. */
export const handler = httpFunction('deleteFile', async (event, context) => {
  await storageService().deleteFile(context.owner, pathFileId(event));
  return { statusCode: 204 };
});
