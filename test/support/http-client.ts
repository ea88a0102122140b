import type { CreatedUpload } from '../../lib/service/storage-service.ts';

/** Sends bytes to a presigned upload the way a web or mobile client would: plain fetch. */
export async function sendUpload(upload: CreatedUpload['upload'], bytes: Uint8Array, filename = 'recording'): Promise<Response> {
  if (upload.method === 'MULTIPART') throw new Error('a multipart upload is sent part by part (test/support/multipart-client.ts)');
  if (upload.method === 'PUT') {
    return fetch(upload.url, { method: 'PUT', headers: upload.headers, body: bytes });
  }
  const form = new FormData();
  for (const [name, value] of Object.entries(upload.fields ?? {})) form.append(name, value);
  form.append('file', new Blob([bytes]), filename);
  return fetch(upload.url, { method: 'POST', body: form });
}
