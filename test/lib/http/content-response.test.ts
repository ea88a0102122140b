import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { contentResponse } from '../../../lib/http/content-response.ts';
import type { FileContent, FileInfo } from '../../../lib/storage/storage-service.ts';

function content(filename: string, bytes = Buffer.from('RIFF....WAVE')): FileContent {
  const info: FileInfo = {
    fileId: '3f8b2c1a-1234-4abc-8def-0123456789ab',
    status: 'ready',
    filename,
    contentType: 'audio/wav',
    size: bytes.length,
    sha256: 'ab'.repeat(32),
    encrypted: true,
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
  };
  return { info, stream: Readable.from([bytes]), range: undefined, contentLength: bytes.length };
}

describe('contentResponse', () => {
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
