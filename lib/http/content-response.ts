import { buffer } from 'node:stream/consumers';
import { StorageFileSizeError } from '../errors/catalogue.ts';
import type { FileContent } from '../service/storage-service.ts';
import type { HttpResult } from './http-function.ts';

/**
 * Shapes decrypted content as a buffered Lambda response. A Lambda response carries at most
 * 6 MB (base64 inflates bytes by 4/3), so a body above `maxBytes` is refused with a hint to
 * ask for ranges; backends that need whole large files read them through the library,
 * which streams.
 */
export async function contentResponse(content: FileContent, maxBytes: number): Promise<HttpResult> {
  const { info, range, contentLength } = content;
  if (contentLength > maxBytes) {
    content.stream.destroy();
    throw new StorageFileSizeError(
      `The response would be ${contentLength} bytes; this endpoint returns at most ${maxBytes} bytes at once. Ask for byte ranges (Range: bytes=start-end).`,
      { operation: 'getFile', fileId: info.fileId, details: { contentLength, maxBytes } },
    );
  }
  const body = await buffer(content.stream);
  const headers: Record<string, string> = {
    'Content-Type': info.contentType,
    'Content-Length': String(body.length),
    'Accept-Ranges': 'bytes',
    ETag: `"${info.sha256 ?? info.fileId}"`,
    'Cache-Control': 'private, no-store',
    'X-Content-Type-Options': 'nosniff',
    // toWellFormed: a name stored before names had to be well-formed must not make encodeURIComponent throw (a 500).
    'Content-Disposition': `inline; filename*=UTF-8''${encodeURIComponent(info.filename.toWellFormed())}`,
  };
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${range.total}`;
  return { statusCode: range ? 206 : 200, headers, body: body.toString('base64'), isBase64Encoded: true };
}
