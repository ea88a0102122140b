import { httpFunction, json, pathFileId } from '../lib/http/http-function.ts';
import { storageService } from '../lib/service/storage-service.ts';

/** GET /files/{fileId} — status and attributes of one file. */
export const handler = httpFunction('getFileInfo', async (event, context) =>
  json(200, await storageService().getFileInfo(context.owner, pathFileId(event))),
);
