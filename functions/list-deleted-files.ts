import { httpFunction, json } from '../lib/http/http-function.ts';
import { storageService } from '../lib/service/storage-service.ts';

/** GET /deleted-files — the caller's deleted files that can still be restored. */
export const handler = httpFunction('listDeletedFiles', async (_event, context) =>
  json(200, { files: await storageService().listDeletedFiles(context.owner) }),
);
