import { httpFunction, json, jsonBody } from '../lib/http/http-function.ts';
import { storageService } from '../lib/service/storage-service.ts';

/** POST /files — validates the request and returns a presigned upload. */
export const handler = httpFunction('createUpload', async (event, context) => {
  const created = await storageService().createUpload(context.owner, jsonBody(event, 'createUpload'));
  return json(201, created);
});
