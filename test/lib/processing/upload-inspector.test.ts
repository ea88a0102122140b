import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { UploadInspector, UploadRejection } from '../../../lib/processing/upload-inspector.ts';
import { m4a, mp3, sha256, wav } from '../../support/audio-fixtures.ts';

/**
 * The inspector's own size check, whoever calls it: processing compares sizes again itself, but
 * storeFile relies on the inspector alone, so a short upload must fail here, not only there.
 */

async function inspect(bytes: Buffer, expectedSize: number | undefined, maxSize = 1 << 30, extension: 'wav' | 'mp3' | 'm4a' = 'wav') {
  const inspector = new UploadInspector({ extension, expectedSize, maxSize });
  // In chunks, as a network stream arrives.
  const chunks = Array.from({ length: Math.ceil(bytes.length / 4096) }, (_, i) => bytes.subarray(i * 4096, (i + 1) * 4096));
  await pipeline(Readable.from(chunks), inspector, new Writable({ write: (_c, _e, done) => done() }));
  return inspector.result;
}

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
});
