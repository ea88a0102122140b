import { httpFunction, json, pathFileId } from '../lib/http/http-function.ts';
import { storageService } from '../lib/service/storage-service.ts';

/** POST /files/{fileId}/complete — completes a resumable upload once every part is there; processing follows. */
export const handler = httpFunction('completeUpload', async (event, context) =>
  json(202, await storageService().completeUpload(context.owner, pathFileId(event))),
);
