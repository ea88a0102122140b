import { z } from 'zod';
import { ValidationError } from '../lib/errors/catalogue.ts';
import { httpFunction, json, jsonBody, pathFileId, requestOrigin } from '../lib/http/http-function.ts';
import { storageService } from '../lib/storage/storage-service.ts';

const body = z.strictObject({ expiresIn: z.number().int().positive().optional() });

/** POST /files/{fileId}/links — a short-lived playback link, usable with no header. */
export const handler = httpFunction('createPlaybackLink', async (event, context) => {
  const fileId = pathFileId(event);
  const parsed = body.safeParse(event.body ? jsonBody(event, 'createPlaybackLink') : {});
  if (!parsed.success) {
    throw new ValidationError('The body may only hold expiresIn, a whole number of seconds.', { operation: 'createPlaybackLink', fileId });
  }
  const link = await storageService().createPlaybackLink(context.owner, fileId, { expiresInSeconds: parsed.data.expiresIn });
  return json(201, { fileId, url: `${requestOrigin(event)}${link.path}`, expiresAt: link.expiresAt });
});
