import { linkRequestSchema } from '../lib/auth/playback-link.ts';
import { httpFunction, json, pathFileId, requestBody, requestOrigin } from '../lib/http/http-function.ts';
import { storageService } from '../lib/storage/storage-service.ts';

/** POST /files/{fileId}/links — a short-lived playback link, usable with no header. */
export const handler = httpFunction('createPlaybackLink', async (event, context) => {
  const fileId = pathFileId(event);
  const { expiresIn } = requestBody(event, linkRequestSchema, 'createPlaybackLink');
  const link = await storageService().createPlaybackLink(context.owner, fileId, { expiresInSeconds: expiresIn });
  return json(201, { fileId, url: `${requestOrigin(event)}${link.path}`, expiresAt: link.expiresAt });
}, { secrets: ['jwtSecret'] });
