import { StorageFileNotFoundError, ValidationError } from '../lib/errors/catalogue.ts';
import { httpFunction, pathFileId } from '../lib/http/http-function.ts';
import { storageService } from '../lib/service/storage-service.ts';

/**
 * DELETE /files/{fileId}[?purge=true] — removes the file; it stays restorable for the recovery
 * window unless purged, and a purge also takes a file deleted earlier.
 */
export const handler = httpFunction('deleteFile', async (event, context) => {
  const fileId = pathFileId(event);
  const purge = event.queryStringParameters?.purge;
  if (purge !== undefined && purge !== 'true' && purge !== 'false') {
    throw new ValidationError('purge must be true or false.', { operation: 'deleteFile', fileId });
  }
  if (!(await storageService().deleteFile(context.owner, fileId, { purge: purge === 'true' }))) {
    throw new StorageFileNotFoundError('File not found.', { operation: 'deleteFile', fileId });
  }
  return { statusCode: 204 };
});
