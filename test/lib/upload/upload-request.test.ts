import { describe, expect, it } from 'vitest';
import { StorageFileSizeError, ValidationError } from '../../../lib/errors/catalogue.ts';
import { parseBody, parseUploadRequest, partsRequestSchema, s3RequestSchema } from '../../../lib/upload/upload-request.ts';

const config = { allowedExtensions: ['mp3', 'wav', 'm4a'], maxFileSize: 1024 * 1024 } as Parameters<typeof parseUploadRequest>[1];
const body = (filename: string) => ({ filename, contentType: 'audio/wav', size: 100 });
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const HEX64 = '0123456789abcdef'.repeat(4);

/** The request a `.wav` upload of 100 bytes makes, with `fields` changed. */
const wav = (fields: Record<string, unknown> = {}) => ({ filename: 'call.wav', contentType: 'audio/wav', size: 100, ...fields });
const parse = (fields: Record<string, unknown>) => parseUploadRequest(wav(fields), config);

/** The error `fn` throws (failing the test when it throws none). */
function thrown(fn: () => unknown): Error & { operation?: string; details?: Record<string, unknown> } {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

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

  it.each(['dir/call.wav', 'dir\\call.wav', 'call\n.wav', 'call\u0000.wav', 'call\u007f.wav'])('refuses a name with a slash or a control character (%j)', (filename) => {
    expect(() => parseUploadRequest(body(filename), config)).toThrow('Invalid request: filename: must not contain control characters or slashes');
  });
});

describe('parseUploadRequest: what is returned', () => {
  it('returns the request as checked, with the extension and both content types', () => {
    expect(parseUploadRequest(wav(), config)).toEqual({
      filename: 'call.wav',
      contentType: 'audio/wav',
      uploadContentType: 'audio/wav',
      extension: 'wav',
      size: 100,
      uploadMethod: 'POST',
    });
  });

  it('lower-cases the declared content type and drops its parameters', () => {
    expect(parse({ contentType: 'Audio/WAV ; codecs=1' })).toMatchObject({ contentType: 'audio/wav', uploadContentType: 'audio/wav' });
  });

  it('lower-cases the SHA-256', () => {
    expect(parse({ sha256: HEX64.toUpperCase() }).sha256).toBe(HEX64);
  });

  it.each(['POST', 'PUT', 'MULTIPART'])('accepts the upload method %s', (uploadMethod) => {
    expect(parse({ uploadMethod }).uploadMethod).toBe(uploadMethod);
  });
});

describe('parseUploadRequest: content types', () => {
  // What browsers and phones send when they do not know the type: the file is recorded with the
  // extension's own type, and the client uploads with what it declared (or with no type at all).
  it.each([
    ['call.mp3', '', 'audio/mpeg', undefined],
    ['call.m4a', 'application/octet-stream', 'audio/mp4', 'application/octet-stream'],
    ['call.wav', 'binary/octet-stream', 'audio/wav', 'binary/octet-stream'],
  ])('accepts %s declared as %j, recorded as %s', (filename, contentType, recorded, uploaded) => {
    const request = parse({ filename, contentType });
    expect(request.contentType).toBe(recorded);
    expect(request.uploadContentType).toBe(uploaded);
  });

  it('keeps an audio type that fits the extension, other than its first', () => {
    expect(parse({ filename: 'call.mp3', contentType: 'audio/x-mpeg-3' })).toMatchObject({ contentType: 'audio/x-mpeg-3', uploadContentType: 'audio/x-mpeg-3' });
  });

  it('refuses a type that does not fit the extension, naming the ones that do', () => {
    expect(() => parse({ contentType: 'audio/mpeg' })).toThrow(
      'Content type "audio/mpeg" does not fit a .wav file; use one of audio/wav, audio/wave, audio/x-wav, audio/vnd.wave.',
    );
    const error = thrown(() => parse({ contentType: 'text/plain' }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.operation).toBe('createUpload');
  });
});

describe('parseUploadRequest: extensions', () => {
  it('refuses an extension that is not configured, naming the allowed ones', () => {
    const error = thrown(() => parse({ filename: 'call.flac' }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toBe('Files of type "flac" are not accepted; allowed: mp3, wav, m4a.');
    expect(error.operation).toBe('createUpload');
  });

  it('refuses a name without an extension as of type "(none)"', () => {
    expect(() => parse({ filename: 'call' })).toThrow('Files of type "(none)" are not accepted; allowed: mp3, wav, m4a.');
  });

  it('refuses an audio format that the configuration leaves out', () => {
    const wavOnly = { ...config, allowedExtensions: ['wav'] } as typeof config;
    expect(() => parseUploadRequest(wav({ filename: 'call.mp3', contentType: 'audio/mpeg' }), wavOnly)).toThrow('allowed: wav.');
  });
});

describe('parseUploadRequest: sizes', () => {
  it('accepts a size up to the configured limit and refuses one past it with a 413', () => {
    expect(parse({ size: config.maxFileSize }).size).toBe(config.maxFileSize);
    const error = thrown(() => parse({ size: config.maxFileSize + 1 }));
    expect(error).toBeInstanceOf(StorageFileSizeError);
    expect(error.message).toBe(`File is ${config.maxFileSize + 1} bytes; the limit is ${config.maxFileSize} bytes.`);
    expect(error.operation).toBe('createUpload');
    expect(error.details).toEqual({ size: config.maxFileSize + 1, limit: config.maxFileSize });
  });

  it('refuses an empty file', () => {
    expect(() => parse({ size: 0 })).toThrow('Invalid request: size: must be at least 1 byte');
    expect(parse({ size: 1 }).size).toBe(1);
  });

  it('accepts a part size from 5 MiB to 5 GiB', () => {
    expect(parse({ uploadMethod: 'MULTIPART', partSize: 5 * MiB }).partSize).toBe(5 * MiB);
    expect(parse({ uploadMethod: 'MULTIPART', partSize: 5 * GiB }).partSize).toBe(5 * GiB);
  });

  it('refuses a part size outside 5 MiB to 5 GiB', () => {
    expect(() => parse({ uploadMethod: 'MULTIPART', partSize: 5 * MiB - 1 })).toThrow('partSize: must be at least 5 MiB');
    expect(() => parse({ uploadMethod: 'MULTIPART', partSize: 5 * GiB + 1 })).toThrow('partSize: must be at most 5 GiB');
  });
});

describe('parseUploadRequest: sha256', () => {
  it.each([
    ['63 characters', HEX64.slice(1)],
    ['65 characters', `${HEX64}0`],
    ['a leading non-hex character', `x${HEX64}`],
    ['a trailing non-hex character', `${HEX64}x`],
    ['non-hex characters', 'g'.repeat(64)],
  ])('refuses a SHA-256 of %s', (_, sha256) => {
    expect(() => parse({ sha256 })).toThrow('Invalid request: sha256: must be 64 hexadecimal characters');
  });
});

describe('parseUploadRequest: metadata', () => {
  const entries = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, 'v']));

  it('accepts keys of 1 to 64 of a-z 0-9 _ - and values up to 256 characters', () => {
    const metadata = { a: '', [`${'k'.repeat(62)}_-`]: 'x'.repeat(256), '0-9': 'é' };
    expect(parse({ metadata }).metadata).toEqual(metadata);
  });

  // The key pattern is anchored at both ends: a key that only contains or ends with a valid run is refused.
  it.each(['', 'Key', 'key!', 'a b', 'k'.repeat(65)])('refuses the key %j', (key) => {
    // The caller is told what a key may be, not only that this one may not.
    expect(() => parse({ metadata: { [key]: 'v' } })).toThrow(`Invalid request: metadata.${key}: keys are 1-64 of a-z 0-9 _ -`);
  });

  it('refuses a value over 256 characters', () => {
    expect(() => parse({ metadata: { note: 'x'.repeat(257) } })).toThrow('Invalid request: metadata.note:');
  });

  it('accepts 16 entries and refuses 17', () => {
    expect(Object.keys(parse({ metadata: entries(16) }).metadata!)).toHaveLength(16);
    expect(() => parse({ metadata: entries(17) })).toThrow('Invalid request: metadata: at most 16 entries');
  });

  // Counted in UTF-8 bytes of the JSON: `{"k0":"…","k1":"…",…}`.
  it('accepts metadata of 1024 bytes in all and refuses 1025', () => {
    const ofBytes = (bytes: number) => {
      const metadata: Record<string, string> = { k0: 'x'.repeat(250), k1: 'x'.repeat(250), k2: 'x'.repeat(250), k3: '' };
      metadata.k3 = 'x'.repeat(bytes - Buffer.byteLength(JSON.stringify(metadata)));
      return metadata;
    };
    expect(parse({ metadata: ofBytes(1024) }).metadata).toEqual(ofBytes(1024));
    expect(() => parse({ metadata: ofBytes(1025) })).toThrow('Invalid request: metadata: at most 1024 bytes in all');
  });

  it('counts bytes, not characters', () => {
    const metadata = { k0: 'é'.repeat(250), k1: 'é'.repeat(250) }; // 517 characters of JSON, 1017 bytes
    expect(parse({ metadata }).metadata).toEqual(metadata);
    expect(() => parse({ metadata: { ...metadata, k2: 'é'.repeat(4) } })).toThrow('at most 1024 bytes in all');
  });
});

describe('parseUploadRequest: the body as a whole', () => {
  it('names every field that is wrong, in one message, and keeps the list in the details', () => {
    const error = thrown(() => parseUploadRequest({ filename: 'a/b.wav', contentType: 'audio/wav', size: 0 }, config));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toBe('Invalid request: filename: must not contain control characters or slashes; size: must be at least 1 byte');
    expect(error.operation).toBe('createUpload');
    expect(error.details).toEqual({ issues: ['filename: must not contain control characters or slashes', 'size: must be at least 1 byte'] });
  });

  it('names the body itself when it is not an object, or holds a field it does not know', () => {
    expect(() => parseUploadRequest(null, config)).toThrow(/^Invalid request: body: /);
    expect(() => parseUploadRequest([], config)).toThrow(/^Invalid request: body: /);
    expect(() => parse({ owner: 'someone-else' })).toThrow(/^Invalid request: body: .*owner/);
  });

  it.each(['GET', 'post', ''])('refuses the upload method %j', (uploadMethod) => {
    expect(() => parse({ uploadMethod })).toThrow(/^Invalid request: uploadMethod: /);
  });
});

describe('partsRequestSchema', () => {
  const parts = (input: unknown) => parseBody(partsRequestSchema, input, 'signParts');

  it('accepts 1 to 100 part numbers, with or without an upload id', () => {
    expect(parts({ partNumbers: [1] })).toEqual({ partNumbers: [1] });
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(parts({ partNumbers: hundred, uploadId: 'u'.repeat(1024) })).toEqual({ partNumbers: hundred, uploadId: 'u'.repeat(1024) });
    expect(parts({ partNumbers: [3, 1], uploadId: 'abc' })).toEqual({ partNumbers: [3, 1], uploadId: 'abc' });
  });

  it('refuses no part numbers, more than 100, or one that is not a positive integer, naming its position', () => {
    expect(() => parts({ partNumbers: [] })).toThrow(/^Invalid request: partNumbers: /);
    expect(() => parts({ partNumbers: Array.from({ length: 101 }, (_, i) => i + 1) })).toThrow(/^Invalid request: partNumbers: /);
    expect(() => parts({ partNumbers: [1, 0] })).toThrow(/^Invalid request: partNumbers\.1: /);
    expect(() => parts({ partNumbers: [1.5] })).toThrow(/^Invalid request: partNumbers\.0: /);
  });

  it('refuses an empty or over-long upload id, and unknown fields', () => {
    expect(() => parts({ partNumbers: [1], uploadId: '' })).toThrow(/^Invalid request: uploadId: /);
    expect(() => parts({ partNumbers: [1], uploadId: 'u'.repeat(1025) })).toThrow(/^Invalid request: uploadId: /);
    expect(() => parts({ partNumbers: [1], key: 'x' })).toThrow(/^Invalid request: body: /);
  });

  it('reports the operation it was given', () => {
    expect(thrown(() => parts({})).operation).toBe('signParts');
  });
});

describe('s3RequestSchema', () => {
  const s3 = (input: unknown) => parseBody(s3RequestSchema, input, 'signS3Request');

  it.each(['PUT', 'POST', 'GET', 'DELETE'])('accepts the method %s', (method) => {
    expect(s3({ method })).toEqual({ method });
  });

  it('keeps what Uppy sends besides the method', () => {
    const request = { method: 'PUT', uploadId: 'u'.repeat(1024), partNumber: 2, key: 'k'.repeat(1024), contentType: 't'.repeat(200) };
    expect(s3(request)).toEqual(request);
    expect(s3({ method: 'POST', uploadId: 'a', key: 'uploads/x', contentType: 'audio/wav' })).toEqual({
      method: 'POST',
      uploadId: 'a',
      key: 'uploads/x',
      contentType: 'audio/wav',
    });
  });

  it.each([
    ['no method', {}, 'method'],
    ['another method', { method: 'HEAD' }, 'method'],
    ['an empty upload id', { method: 'GET', uploadId: '' }, 'uploadId'],
    ['an upload id over 1024 characters', { method: 'GET', uploadId: 'u'.repeat(1025) }, 'uploadId'],
    ['part number 0', { method: 'PUT', partNumber: 0 }, 'partNumber'],
    ['a key over 1024 characters', { method: 'PUT', key: 'k'.repeat(1025) }, 'key'],
    ['a content type over 200 characters', { method: 'PUT', contentType: 't'.repeat(201) }, 'contentType'],
  ])('refuses %s', (_, input, field) => {
    expect(() => s3(input)).toThrow(`Invalid request: ${field}: `);
  });
});
