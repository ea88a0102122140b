import { httpFunction, pathFileId } from '../lib/http/http-function.ts';
import { parseRangeHeader } from '../lib/http/range-header.ts';
import { contentResponse } from '../lib/http/content-response.ts';
import { storageService } from '../lib/storage/storage-service.ts';

/** GET /files/{fileId}/content — decrypted bytes, whole (200) or one `Range` (206). */
export const handler = httpFunction('getFile', async (event, context) => {
  const fileId = pathFileId(event);
  const range = parseRangeHeader(event.headers?.range ?? event.headers?.Range, fileId);
  const service = storageService();
  return contentResponse(await service.getFile(context.owner, fileId, range && { range }), service.config.maxResponseBytes);
});
