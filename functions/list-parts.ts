import { httpFunction, json, pathFileId } from '../lib/http/http-function.ts';
import { storageService } from '../lib/service/storage-service.ts';

/** GET /files/{fileId}/parts — what a resuming client has already uploaded. */
export const handler = httpFunction('listParts', async (event, context) => json(200, await storageService().listParts(context.owner, pathFileId(event))));
