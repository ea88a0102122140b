// Uppy 6 (@uppy/core + @uppy/aws-s3 6.x) uploading to Transcribo storage, with nothing but the
// options Uppy documents. Uppy sends every S3 request to MinIO/S3 itself; our API only signs them.
import AwsS3 from '@uppy/aws-s3';

const MiB = 1024 * 1024;

/**
 * Installs Transcribo on an Uppy instance. `token` is the bearer token, or a function returning it
 * (sync or async) so an app can refresh it. Files above `multipartThreshold` bytes go up as a
 * resumable multipart upload in parts of `partSize`; smaller ones as one signed PUT.
 */
export function useTranscribo(uppy, { api, token, multipartThreshold = 16 * MiB, partSize = 8 * MiB, limit }) {
  const call = async (path, body) => {
    const bearer = typeof token === 'function' ? await token() : token;
    const response = await fetch(api + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = await response.json().catch(() => ({}));
    if (!response.ok) throw Object.assign(new Error(json.error?.message ?? `${path}: HTTP ${response.status}`), { type: json.error?.type, status: response.status });
    return json;
  };
  // One decision, used both for POST /files and by Uppy, so the product and Uppy agree on the mode.
  const multipart = (file) => file.size > multipartThreshold;
  // getChunkSize gets only {size}, not the file: so the part size is a rule of the size alone, the
  // one Uppy and the server both apply (at least 5 MiB; larger when 10,000 parts would not hold it).
  const chunkSize = (size) => Math.max(Math.max(partSize, 5 * MiB), Math.ceil(size / 10_000));

  // Before Uppy uploads, each file gets its product id (POST /files): the object key must be
  // uploads/<fileId>. Retries run preprocessors again, so a file that has its id keeps it. A file
  // the API refuses (type, size, auth) fails alone, with the API's message; the others go on.
  uppy.addPreProcessor((ids) =>
    Promise.all(
      ids.map(async (id) => {
        const file = uppy.getFile(id);
        if (file.meta.fileId) return;
        try {
          const mode = multipart(file) ? 'MULTIPART' : 'PUT';
          const created = await call('/files', {
            filename: file.name,
            contentType: file.type || 'application/octet-stream', // the magic bytes decide for .m4a & co
            size: file.size,
            uploadMethod: mode,
            ...(mode === 'MULTIPART' && { partSize: chunkSize(file.size) }),
          });
          if (mode === 'MULTIPART' && created.upload.partSize !== chunkSize(file.size)) {
            throw new Error(`The server chose parts of ${created.upload.partSize} bytes, Uppy would send ${chunkSize(file.size)}.`);
          }
          uppy.setFileMeta(id, { fileId: created.fileId, partSize: created.upload.partSize ?? null });
        } catch (error) {
          uppy.emit('upload-error', uppy.getFile(id), error);
        }
      }),
    ),
  );

  uppy.use(AwsS3, {
    shouldUseMultipart: multipart,
    getChunkSize: ({ size }) => chunkSize(size),
    // The key is the server's (uploads/<fileId>); signRequest gets only the key, so it carries the id.
    generateObjectKey: (file) => `uploads/${file.meta.fileId}`,
    // The product signs each request for this file's key only, with its exact sizes; Uppy sends it.
    signRequest: ({ method, key, uploadId, partNumber }) => {
      const fileId = /^uploads\/([0-9a-f-]{36})$/.exec(key)?.[1];
      if (!fileId) throw new Error(`Not a Transcribo upload key: ${key}`);
      return call(`/files/${fileId}/s3-requests`, { method, uploadId, partNumber });
    },
    // Our meta (fileId, partSize) is the adapter's: nothing of it goes to S3 as metadata.
    allowedMetaFields: [],
    ...(limit && { limit }),
  });

  // A browser that went offline and came back resumes what failed (multipart: the parts not yet
  // stored, found with ListParts). Other failures wait for the app's uppy.retryAll().
  uppy.on('back-online', () => {
    if (uppy.getFiles().some((file) => file.error)) uppy.retryAll();
  });
  return uppy;
}
