import { httpFunction, json, pathFileId } from '../lib/http/http-function.ts';
import { storageService } from '../lib/service/storage-service.ts';

/** POST /files/{fileId}/restore — a deleted file back, ready, within its recovery window. */
export const handler = httpFunction('restoreFile', async (event, context) =>
  json(200, await storageService().restoreFile(context.owner, pathFileId(event))),
);
