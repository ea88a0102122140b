import { httpFunction, pathFileId } from '../lib/http/http-function.ts';
import { parseRangeHeader } from '../lib/byte-range.ts';
import { contentResponse } from '../lib/http/content-response.ts';
import { storageService } from '../lib/service/storage-service.ts';

/**
 * GET /files/{fileId}/content — decrypted bytes, whole (200) or by `Range` (206), with a bearer
 * token or a playback link. A range is served up to one response's worth
 * (`STORAGE_MAX_RESPONSE_BYTES`), so a media player's `bytes=0-` gets the start and asks on.
 */
export const handler = httpFunction(
  'getFile',
  async (event, context) => {
    const fileId = pathFileId(event);
    const range = parseRangeHeader(event.headers?.range ?? event.headers?.Range, fileId);
    const service = storageService();
    const maxLength = service.config.maxResponseBytes;
    return contentResponse(await service.getFile(context.owner, fileId, { ...(range && { range }), maxLength }), maxLength);
  },
  { playbackLinks: true },
);
