import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../lib/errors/catalogue.ts';
import { parseUploadRequest } from '../../../lib/upload/upload-request.ts';

const config = { allowedExtensions: ['mp3', 'wav', 'm4a'], maxFileSize: 1024 * 1024 } as Parameters<typeof parseUploadRequest>[1];
const body = (filename: string) => ({ filename, contentType: 'audio/wav', size: 100 });

describe('parseUploadRequest: filenames', () => {
  // Found by test/e2e/fuzz.test.ts: `{"filename": "\ud800.wav"}` was accepted, and reading the
  // file's content then failed with a 500 (encodeURIComponent throws on a lone surrogate).
  it.each(['\ud800.wav', 'a\udfffb.wav', 'note \ud83c.wav'])('refuses a name that is not well-formed Unicode (%j)', (filename) => {
    expect(() => parseUploadRequest(body(filename), config)).toThrow(ValidationError);
    expect(() => parseUploadRequest(body(filename), config)).toThrow(/well-formed Unicode/);
  });

  it.each(['🎙 interview.wav', 'note é.wav', '会议.wav', '"quoted"; name=x.wav'])('accepts any well-formed name (%j)', (filename) => {
    expect(parseUploadRequest(body(filename), config).filename).toBe(filename);
  });
});
