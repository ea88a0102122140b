import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidAudio } from '../../../lib/audio/container-walker.ts';
import { AudioCheck } from '../../../lib/processing/audio-check.ts';
import { UploadInspector, UploadRejection } from '../../../lib/processing/upload-inspector.ts';
import { m4a, mp3, notAudio, sha256, wav } from '../../support/audio-fixtures.ts';
import { runInspector } from '../../support/inspect-upload.ts';

/**
 * The inspector's own size check, whoever calls it: processing compares sizes again itself, but
 * storeFile relies on the inspector alone, so a short upload must fail here, not only there.
 */

async function inspect(bytes: Buffer, expectedSize: number | undefined, maxSize = 1 << 30, extension: 'wav' | 'mp3' | 'm4a' = 'wav') {
  // In chunks, as a network stream arrives.
  const chunks = Array.from({ length: Math.ceil(bytes.length / 4096) }, (_, i) => bytes.subarray(i * 4096, (i + 1) * 4096));
  return inspectChunks(chunks, { extension, expectedSize, maxSize });
}

async function inspectChunks(chunks: Buffer[], options: { extension: 'wav' | 'mp3' | 'm4a'; expectedSize?: number | undefined; maxSize?: number }) {
  const inspector = new UploadInspector({ maxSize: 1 << 30, ...options });
  return runInspector(inspector, chunks);
}

/** The refusal a pass ends with (fails the test if it passes). */
const refusalOf = (pass: Promise<unknown>) =>
  pass.then(
    () => expect.fail('the upload passed'),
    (error: unknown) => error,
  );

describe('UploadInspector', () => {
  it('passes a whole recording of the declared size, with its size and SHA-256', async () => {
    const bytes = wav(50_000);
    expect(await inspect(bytes, bytes.length)).toMatchObject({ size: bytes.length, sha256: sha256(bytes) });
  });

  // MP3 and M4A have no header that states the file's length: the size check is what catches them.
  it.each([
    ['mp3', 1],
    ['mp3', 418],
    ['mp3', 25_000],
    ['m4a', 1],
    ['m4a', 4096],
    ['m4a', 25_000],
  ] as const)('refuses a %s recording %i bytes shorter than declared, though it is a whole recording of its own', async (extension, missing) => {
    const bytes = (extension === 'mp3' ? mp3 : m4a)(50_000 - missing);
    const refusal = await inspect(bytes, 50_000, 1 << 30, extension).then(
      () => expect.fail('a short upload passed'),
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(UploadRejection);
    expect(refusal).toMatchObject({ code: 'size_mismatch', message: `upload is ${bytes.length} bytes but 50000 were declared` });
  });

  it('refuses a WAV shorter than declared from its RIFF header already, before reading it all', async () => {
    await expect(inspect(wav(40_000), 50_000)).rejects.toBeInstanceOf(UploadRejection);
  });

  it('refuses a recording longer than declared at the first byte past it', async () => {
    await expect(inspect(mp3(50_001), 50_000, 1 << 30, 'mp3')).rejects.toMatchObject({ code: 'size_mismatch', message: 'upload is larger than declared (50000 bytes)' });
  });

  it('with no declared size, refuses past the size limit and passes below it', async () => {
    await expect(inspect(wav(20_000), undefined, 10_000)).rejects.toMatchObject({ code: 'too_large' });
    expect(await inspect(wav(9_000), undefined, 10_000)).toMatchObject({ size: 9_000 });
  });

  it('names its refusals UploadRejection, as they appear in logs', async () => {
    const refusal = await refusalOf(inspect(wav(20_000), undefined, 10_000));
    expect(refusal).toBeInstanceOf(UploadRejection);
    expect(refusal).toMatchObject({ name: 'UploadRejection', message: 'upload is larger than the size limit (10000 bytes)' });
  });
});

describe('UploadInspector: the format check on the first bytes', () => {
  it('refuses content of another format, saying which it is', async () => {
    const refusal = await refusalOf(inspect(mp3(5_000), 5_000, 1 << 30, 'wav'));
    expect(refusal).toMatchObject({ code: 'wrong_format', message: 'content is mp3 audio but the file was declared as wav' });
  });

  it('refuses content of no known format', async () => {
    const refusal = await refusalOf(inspect(notAudio(5_000), 5_000, 1 << 30, 'm4a'));
    expect(refusal).toMatchObject({ code: 'wrong_format', message: 'content is not a recognised m4a file' });
  });

  // The check runs once 12 bytes are in; a file shorter than that gets it when its stream ends, or
  // when the parser, told a declared size under 12 bytes, gives up first: the code is the same.
  it.each([undefined, 6])('checks the format of a file shorter than the bytes the sniffer wants (declared size %s)', async (declared) => {
    expect(await refusalOf(inspect(Buffer.from('%PDF-1'), declared))).toMatchObject({ code: 'wrong_format', message: 'content is not a recognised wav file' });
    expect(await refusalOf(inspect(Buffer.from('ID3\x04'), declared === undefined ? undefined : 4))).toMatchObject({
      code: 'wrong_format',
      message: 'content is mp3 audio but the file was declared as wav',
    });
  });

  it('refuses on the first 12 bytes, without waiting for the rest of the upload', async () => {
    // The rest never comes: the refusal must not depend on the stream ending.
    for (const first of [wav(9_000).subarray(0, 12), wav(9_000).subarray(0, 4096)]) {
      const inspector = new UploadInspector({ extension: 'mp3', expectedSize: 9_000, maxSize: 1 << 30 });
      // Refused as the chunk is written, not at a later step.
      expect(() => inspector.write(first), `${first.length} bytes`).toThrow(
        expect.objectContaining({ code: 'wrong_format', message: 'content is wav audio but the file was declared as mp3' }),
      );
      inspector.abort();
    }
  });

  it('a file shorter than 12 bytes and than declared is refused for its format first', async () => {
    // What the bytes are decides before how many there are, as for a longer file.
    expect(await refusalOf(inspect(Buffer.from('%PDF-1'), 50_000))).toMatchObject({ code: 'wrong_format', message: 'content is not a recognised wav file' });
  });

  it('waits for enough bytes when the upload arrives a few bytes at a time', async () => {
    const bytes = wav(9_000);
    // RIFF alone is no WAV yet: the sniffer must not decide on the first chunk.
    const chunks = [bytes.subarray(0, 4), bytes.subarray(4, 5), bytes.subarray(5, 11), bytes.subarray(11, 13), bytes.subarray(13)];
    expect(await inspectChunks(chunks, { extension: 'wav', expectedSize: bytes.length })).toMatchObject({ size: 9_000, sha256: sha256(bytes) });
  });
});

describe('UploadInspector: working with the audio check', () => {
  afterEach(() => vi.restoreAllMocks());

  it('holds the next chunk back until the parser has caught up with this one, so its queue stays bounded', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const write = AudioCheck.prototype.write;
    vi.spyOn(AudioCheck.prototype, 'write').mockImplementationOnce(function (this: AudioCheck, chunk: Buffer) {
      write.call(this, chunk);
      return gate; // the parser is behind
    });
    const bytes = wav(9_000);
    const inspector = new UploadInspector({ extension: 'wav', expectedSize: bytes.length, maxSize: 1 << 30 });
    const passed: Buffer[] = [];
    const pass = runInspector(inspector, [bytes.subarray(0, 4096), bytes.subarray(4096)], (chunk) => void passed.push(chunk));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(passed).toEqual([]);
    release();
    expect(await pass).toMatchObject({ size: bytes.length, sha256: sha256(bytes) });
    expect(Buffer.concat(passed)).toEqual(bytes);
  });

  it('stops the parser when the pass fails, so it lets go of what it holds', async () => {
    const abort = vi.spyOn(AudioCheck.prototype, 'abort');
    await refusalOf(inspect(notAudio(5_000), 5_000));
    expect(abort).toHaveBeenCalled();
  });

  it('turns an invalid recording into a rejection, and passes any other failure on as it is (it is not the client\'s fault)', async () => {
    vi.spyOn(AudioCheck.prototype, 'end').mockRejectedValueOnce(new InvalidAudio('no duration'));
    expect(await refusalOf(inspect(wav(9_000), 9_000))).toMatchObject({
      name: 'UploadRejection',
      code: 'invalid_audio',
      message: 'content is not a valid wav recording: no duration',
    });
    // A fault of our own must stay retryable: a rejection is final.
    const fault = new Error('parser crashed');
    vi.spyOn(AudioCheck.prototype, 'end').mockRejectedValueOnce(fault);
    const refusal = await refusalOf(inspect(wav(9_000), 9_000));
    expect(refusal).toBe(fault);
    expect(refusal).not.toBeInstanceOf(UploadRejection);
  });
});
