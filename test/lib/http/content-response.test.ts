import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StorageFileSizeError } from '../../../lib/errors/catalogue.ts';
import { contentResponse } from '../../../lib/http/content-response.ts';
import type { FileContent, FileInfo } from '../../../lib/service/storage-service.ts';

const FILE_ID = '3f8b2c1a-1234-4abc-8def-0123456789ab';
const SHA256 = 'ab'.repeat(32);

function content(filename: string, bytes = Buffer.from('RIFF....WAVE')): FileContent {
  const info: FileInfo = {
    fileId: FILE_ID,
    status: 'ready',
    filename,
    contentType: 'audio/wav',
    size: bytes.length,
    sha256: SHA256,
    encrypted: true,
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
  };
  return { info, stream: Readable.from([bytes]), range: undefined, contentLength: bytes.length };
}

describe('contentResponse: a whole file', () => {
  it('answers 200 with the bytes, base64-encoded, and the headers of a private, cacheless, rangeable read', async () => {
    const response = await contentResponse(content('call.wav'), 1024);
    expect(response.statusCode).toBe(200);
    expect(response.isBase64Encoded).toBe(true);
    expect(Buffer.from(response.body as string, 'base64').toString()).toBe('RIFF....WAVE');
    expect(response.headers).toEqual({
      'Content-Type': 'audio/wav',
      'Content-Length': '12',
      'Accept-Ranges': 'bytes',
      ETag: `"${SHA256}"`,
      'Cache-Control': 'private, no-store',
      'X-Content-Type-Options': 'nosniff',
      'Content-Disposition': "inline; filename*=UTF-8''call.wav",
    });
  });

  // Before processing has measured it, a file has no SHA-256: its id stands in, still a quoted strong ETag.
  it('tags a file without a SHA-256 with its id', async () => {
    const unhashed = content('call.wav');
    unhashed.info.sha256 = null;
    expect((await contentResponse(unhashed, 1024)).headers!.ETag).toBe(`"${FILE_ID}"`);
  });

  it('names the file in Content-Disposition, percent-encoded', async () => {
    const response = await contentResponse(content('note é; "x".wav'), 1024);
    expect(response.headers!['Content-Disposition']).toBe(`inline; filename*=UTF-8''${encodeURIComponent('note é; "x".wav')}`);
  });

  // Found by test/e2e/fuzz.test.ts: a name holding a lone surrogate (accepted before names had to be
  // well-formed, lib/upload/upload-request.ts) made encodeURIComponent throw, and the read a 500.
  it('serves a file whose stored name holds a lone surrogate, with U+FFFD in its place', async () => {
    const response = await contentResponse(content('a\ud800b.wav'), 1024);
    expect(response.statusCode).toBe(200);
    expect(response.headers!['Content-Disposition']).toBe("inline; filename*=UTF-8''a%EF%BF%BDb.wav");
  });
});

describe('contentResponse: a range', () => {
  it('answers 206 with the bytes of the range and a Content-Range saying which they are of how many', async () => {
    const ranged: FileContent = { ...content('call.wav', Buffer.from('....')), range: { start: 4, end: 7, total: 12 } };
    const response = await contentResponse(ranged, 1024);
    expect(response.statusCode).toBe(206);
    expect(response.headers).toMatchObject({ 'Content-Range': 'bytes 4-7/12', 'Content-Length': '4', 'Accept-Ranges': 'bytes' });
    expect(Buffer.from(response.body as string, 'base64').toString()).toBe('....');
  });
});

describe('contentResponse: the response size limit', () => {
  it('serves a body of exactly the limit', async () => {
    expect((await contentResponse(content('call.wav'), 12)).statusCode).toBe(200);
  });

  it('refuses a body over the limit with a 413 that says to ask for ranges, and lets go of the stream', async () => {
    const large = content('call.wav');
    const error = await contentResponse(large, 11).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StorageFileSizeError);
    expect(error).toMatchObject({
      message: 'The response would be 12 bytes; this endpoint returns at most 11 bytes at once. Ask for byte ranges (Range: bytes=start-end).',
      operation: 'getFile',
      fileId: FILE_ID,
      details: { contentLength: 12, maxBytes: 11 },
    });
    // The stream holds a connection to the storage server (and a decipher): it must not be left open.
    expect(large.stream.destroyed).toBe(true);
  });
});
