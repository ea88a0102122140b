import { linkRequestSchema } from '../lib/auth/playback-link.ts';
import { httpFunction, json, pathFileId, requestBody, requestOrigin } from '../lib/http/http-function.ts';
import { storageService } from '../lib/service/storage-service.ts';

/** POST /files/{fileId}/links — a short-lived playback link, usable with no header. */
export const handler = httpFunction('createPlaybackLink', async (event, context) => {
  const fileId = pathFileId(event);
  const { expiresIn } = requestBody(event, linkRequestSchema, 'createPlaybackLink');
  const service = storageService();
  const link = await service.createPlaybackLink(context.owner, fileId, { expiresInSeconds: expiresIn });
  // Behind a custom domain with a base path, the request's own Host does not say where clients call.
  const base = service.config.publicApiUrl ?? requestOrigin(event);
  return json(201, { fileId, url: `${base}${link.path}`, expiresAt: link.expiresAt });
}, { secrets: ['jwtSecret'] });
