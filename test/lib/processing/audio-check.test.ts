import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { AudioExtension } from '../../../lib/audio-formats.ts';
import { InvalidAudio } from '../../../lib/audio/container-walker.ts';
import { AudioCheck, type AudioDescription } from '../../../lib/processing/audio-check.ts';
import { UploadInspector, UploadRejection } from '../../../lib/processing/upload-inspector.ts';
import { FIXTURES_DIR, cbrFrames, fixture, m4a, mp3, mp3FrameSync, sha256, wav } from '../../support/audio-fixtures.ts';
import { hostileFiles, wavHeader } from '../../support/hostile-audio.ts';
import { runInspector } from '../../support/inspect-upload.ts';

/** Runs bytes through the audio check alone, in chunks of `chunk` bytes, as the inspector would. */
async function check(extension: AudioExtension, bytes: Buffer, chunk = 64 * 1024, expectedSize: number | undefined = bytes.length): Promise<AudioDescription> {
  const audio = new AudioCheck(extension, { expectedSize });
  try {
    for (let at = 0; at < bytes.length; at += chunk) {
      const waiting = audio.write(bytes.subarray(at, at + chunk));
      if (waiting) {
        await waiting;
        if (audio.problem) throw audio.problem;
      }
    }
    return await audio.end();
  } catch (error) {
    audio.abort();
    throw error;
  }
}

function chunks(bytes: Buffer, size: number, pulled?: { bytes: number }): Readable {
  return Readable.from(
    (function* () {
      for (let at = 0; at < bytes.length; at += size) {
        if (pulled) pulled.bytes = Math.min(bytes.length, at + size);
        yield bytes.subarray(at, at + size);
      }
    })(),
  );
}

/** The single pass as sealRecording runs it, into a slow writer that counts what came out. */
async function inspect(extension: AudioExtension, bytes: Buffer, options: { chunk?: number; sinkDelayEvery?: number; pulled?: { bytes: number } } = {}) {
  const inspector = new UploadInspector({ extension, expectedSize: bytes.length, maxSize: 2 ** 31 });
  let out = 0;
  let writes = 0;
  const result = await runInspector(inspector, chunks(bytes, options.chunk ?? 64 * 1024, options.pulled), async (chunk) => {
    out += chunk.length;
    if (options.sinkDelayEvery && ++writes % options.sinkDelayEvery === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  });
  return { result, out };
}

describe('the committed fixtures (real files made by ffmpeg)', () => {
  const expected: Record<string, AudioDescription> = {
    'mono-16k.wav': { durationSeconds: 2, codec: 'PCM', sampleRate: 16000, channels: 1, bitrate: 256000 },
    'stereo-44k.wav': { durationSeconds: 1, codec: 'PCM', sampleRate: 44100, channels: 2, bitrate: 1411200 },
    // ffprobe: 3.030204 s (the LAME Info frame holds no audio and is not counted).
    'cbr-128k.mp3': { durationSeconds: 3.03, codec: 'MPEG 1 Layer 3', sampleRate: 44100, channels: 2, bitrate: 127999 },
    // ffprobe: 3.056327 s; the trailing ID3v1 tag is allowed.
    'vbr-mono.mp3': { durationSeconds: 3.056, codec: 'MPEG 2 Layer 3', sampleRate: 22050, channels: 1, bitrate: 12661 },
    // The track's own duration (mdhd), priming samples included (ffprobe, which applies the edit list: 3.000 s).
    // Mono: music-metadata reports the sample entry's template value of 2 channels; the esds says 1.
    'aac-mono.m4a': { durationSeconds: 3.023, codec: 'MPEG-4/AAC', sampleRate: 44100, channels: 1, bitrate: 65739 },
  };

  it('are small, and all there', () => {
    const names = readdirSync(FIXTURES_DIR).sort();
    expect(names).toEqual(Object.keys(expected).sort());
    const total = names.reduce((sum, name) => sum + statSync(join(FIXTURES_DIR, name)).size, 0);
    expect(total).toBeLessThan(500_000);
  });

  it.each(Object.entries(expected))('%s is accepted and described, whatever the chunking', async (name, description) => {
    const bytes = fixture(name);
    const extension = name.slice(-3) as AudioExtension;
    for (const chunk of [1, 13, 4096, 65536, bytes.length]) expect(await check(extension, bytes, chunk)).toEqual(description);
    expect(await check(extension, bytes, 65536, undefined)).toEqual(description);
    const { result, out } = await inspect(extension, bytes, { chunk: 1000 });
    expect(out).toBe(bytes.length);
    expect(result).toEqual({ size: bytes.length, sha256: sha256(bytes), audio: description });
  });
});

describe('generated recordings (test/support/audio-fixtures.ts)', () => {
  it.each([
    ['wav', wav],
    ['mp3', mp3],
    ['mp3', mp3FrameSync],
    ['m4a', m4a],
  ] as const)('%s from %o: exactly the size asked, real, and accepted', async (extension, make) => {
    for (const size of [2000, 2001, 70_000, 150_001, 1_000_003]) {
      const bytes = make(size);
      expect(bytes.length).toBe(size);
      const audio = await check(extension, bytes, 7919);
      expect(audio.durationSeconds).toBeGreaterThan(0);
      expect(audio.sampleRate).toBeGreaterThan(0);
    }
  });

  it('differ from call to call', () => {
    for (const make of [wav, mp3, mp3FrameSync, m4a]) expect(make(50_000).equals(make(50_000))).toBe(false);
  });

  it('have a duration that follows their size', async () => {
    expect((await check('wav', wav(320_044))).durationSeconds).toBe(10);
    // 128 kbit/s: 16 000 bytes a second.
    expect((await check('mp3', mp3(1_600_000))).durationSeconds).toBeCloseTo(100, 0);
    expect((await check('m4a', m4a(800_000))).durationSeconds).toBeCloseTo(800_000 / 8200, -1);
  });
});

describe('hostile files', () => {
  it.each(hostileFiles().map((h) => [h.name, h] as const))('%s is refused, with a reason', async (_name, hostile) => {
    const refusal = await check(hostile.extension, hostile.bytes, 4096).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(InvalidAudio);
    expect((refusal as Error).message).toMatch(hostile.reason);
    // Through the inspector it is a rejection with its own code (a metric dimension).
    const rejected = await inspect(hostile.extension, hostile.bytes).then(() => undefined, (error: unknown) => error);
    expect(rejected).toBeInstanceOf(UploadRejection);
    expect(rejected).toMatchObject({ code: 'invalid_audio' });
    expect((rejected as Error).message).toMatch(new RegExp(`^content is not a valid ${hostile.extension} recording: `));
  });

  it('a wrong format is still told as such before the structure is read', async () => {
    const rejected = await inspect('wav', mp3(5000)).catch((error: unknown) => error);
    expect(rejected).toMatchObject({ code: 'wrong_format' });
  });

  it('are refused as early as the structure shows it, not after reading everything', async () => {
    const pulled = { bytes: 0 };
    const bytes = Buffer.concat([mp3(100_000), randomBytes(20_000_000)]);
    await expect(inspect('mp3', bytes, { pulled })).rejects.toThrow(/not MPEG audio frames/);
    // What was read ahead of the inspector (the source's and the pipeline's buffers), not the 20 MB.
    expect(pulled.bytes).toBeLessThan(3_000_000);
  });
});

describe('what real files do, and is allowed', () => {
  it('an MP3 cut short inside its last frame (a recording stopped mid-frame); that frame is not counted', async () => {
    const whole = fixture('cbr-128k.mp3');
    const cut = await check('mp3', whole.subarray(0, whole.length - 100));
    expect(cut.durationSeconds).toBeCloseTo(3.03 - 1152 / 44100, 3);
  });

  it('zero padding between the ID3v2 tag and the first frame', async () => {
    const frames = Buffer.concat(cbrFrames().slice(0, 20));
    const id3 = fixture('cbr-128k.mp3').subarray(0, 81);
    expect((await check('mp3', Buffer.concat([id3, Buffer.alloc(3000), frames]))).durationSeconds).toBeCloseTo((20 * 1152) / 44100, 3);
    await expect(check('mp3', Buffer.concat([id3, Buffer.alloc(70_000), frames]))).rejects.toThrow(/zero bytes before the first frame/);
  });

  it('an APEv2 tag with a header, then an ID3v1 tag, after the frames', async () => {
    const frames = Buffer.concat(cbrFrames().slice(0, 10));
    const item = Buffer.concat([Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('Title\0hello', 'latin1')]);
    const apeHeader = Buffer.alloc(32);
    apeHeader.write('APETAGEX', 0, 'latin1');
    apeHeader.writeUInt32LE(2000, 8);
    apeHeader.writeUInt32LE(item.length + 32, 12);
    apeHeader.writeUInt32LE(1, 16);
    apeHeader.writeUInt32LE(0xa0000000, 20);
    const apeFooter = Buffer.from(apeHeader);
    apeFooter.writeUInt32LE(0x80000000, 20);
    const id3v1 = Buffer.alloc(128);
    id3v1.write('TAGtitle', 0, 'latin1');
    const audio = await check('mp3', Buffer.concat([frames, apeHeader, item, apeFooter, id3v1]));
    expect(audio.durationSeconds).toBeCloseTo((10 * 1152) / 44100, 3);
    // The same tags a byte after the frames end: that byte is junk.
    await expect(check('mp3', Buffer.concat([frames, Buffer.from('X'), apeHeader, item, apeFooter, id3v1]))).rejects.toThrow(/212 bytes at offset \d+ are not MPEG audio frames/);
  });

  it('frames of another sample rate spliced in are refused', async () => {
    const vbr = fixture('vbr-mono.mp3');
    const otherFrame = vbr.subarray(vbr.indexOf(Buffer.from([0xff, 0xf3])));
    await expect(check('mp3', Buffer.concat([mp3(20_000), otherFrame]))).rejects.toThrow(/changes from MPEG 1 Layer 3 44100 Hz stereo to MPEG 2 Layer 3 22050 Hz mono/);
  });

  it('a WAV whose odd last chunk is padded outside the RIFF size, or not padded at all', async () => {
    const samples = randomBytes(2000);
    // A chunk of a kind nobody knows, 5 bytes long: its pad byte is the question.
    const list = Buffer.from('note\x05\0\0\0hello', 'latin1');
    const riff = 36 + 2000 + list.length;
    expect((await check('wav', Buffer.concat([wavHeader(2000, riff), samples, list, Buffer.from([0])]))).durationSeconds).toBe(0.063);
    expect((await check('wav', Buffer.concat([wavHeader(2000, riff), samples, list]))).durationSeconds).toBe(0.063);
    await expect(check('wav', Buffer.concat([wavHeader(2000, riff), samples, list, Buffer.from([0, 0])]))).rejects.toThrow(/2 bytes follow the end/);
  });

  it('a WAVE_FORMAT_EXTENSIBLE PCM file (named PCM, which music-metadata cannot)', async () => {
    const stereo = fixture('stereo-44k.wav');
    const samples = stereo.subarray(stereo.indexOf('data', 12, 'latin1') + 8);
    const fmt = Buffer.alloc(48);
    fmt.write('fmt ', 0, 'latin1');
    fmt.writeUInt32LE(40, 4);
    fmt.writeUInt16LE(0xfffe, 8);
    fmt.writeUInt16LE(2, 10);
    fmt.writeUInt32LE(44100, 12);
    fmt.writeUInt32LE(176400, 16);
    fmt.writeUInt16LE(4, 20);
    fmt.writeUInt16LE(16, 22);
    fmt.writeUInt16LE(22, 24);
    fmt.writeUInt16LE(16, 26);
    fmt.writeUInt32LE(3, 28);
    Buffer.from('0100000000001000800000aa00389b71', 'hex').copy(fmt, 32);
    const data = Buffer.concat([Buffer.from('data', 'latin1'), Buffer.alloc(4), samples]);
    data.writeUInt32LE(samples.length, 4);
    const head = Buffer.from('RIFF\0\0\0\0WAVE', 'latin1');
    head.writeUInt32LE(4 + fmt.length + data.length, 4);
    expect(await check('wav', Buffer.concat([head, fmt, data]))).toEqual({ durationSeconds: 1, codec: 'PCM', sampleRate: 44100, channels: 2, bitrate: 1411200 });
  });

  it('a WAV whose header contradicts itself, or whose data ends inside a sample, is refused', async () => {
    const lying = wav(10_044);
    lying.writeUInt16LE(4, 32); // blocks of 4 bytes for 16-bit mono
    await expect(check('wav', lying)).rejects.toThrow(/fmt chunk contradicts itself/);
    const partial = wav(10_044);
    partial.writeUInt32LE(10_045 - 8, 4);
    partial.writeUInt32LE(10_001, 40);
    await expect(check('wav', Buffer.concat([partial, Buffer.from([1])]))).rejects.toThrow(/ends inside a sample/);
    const unknown = wav(10_044);
    unknown.writeUInt16LE(0x0161, 20); // WMA in a WAV
    await expect(check('wav', unknown)).rejects.toThrow(/codec 0x0161 is not supported/);
  });

  it('an M4A with its moov first or last, and an M4A track that claims hours it does not hold', async () => {
    expect((await check('m4a', m4a(50_000))).channels).toBe(1);
    const lying = m4a(50_000);
    const mdhd = lying.indexOf('mdhd', 0, 'latin1');
    lying.writeUInt32BE(44100 * 3600 * 10, mdhd + 4 + 16); // ten hours
    await expect(check('m4a', lying)).rejects.toThrow(/claims 36000 s for/);
  });
});

describe('the pass stays one bounded pass', () => {
  it('when the parser stops early (a CBR MP3 after four frames), every byte still flows to the encryptor', async () => {
    const bytes = mp3(30_000_000);
    const { result, out } = await inspect('mp3', bytes, { sinkDelayEvery: 50 });
    expect(out).toBe(bytes.length);
    expect(result.audio.durationSeconds).toBeCloseTo(30_000_000 / 16_000, 0);
  });

  it('when the parser reads everything (a WAV, an M4A with its moov last) behind a slow consumer, nothing stalls', async () => {
    for (const [extension, bytes] of [
      ['wav', wav(40_000_044)],
      ['m4a', Buffer.concat([fixture('aac-mono.m4a')])],
    ] as const) {
      const { result, out } = await inspect(extension, bytes, { sinkDelayEvery: 20, chunk: 16 * 1024 });
      expect(out).toBe(bytes.length);
      expect(result.audio.durationSeconds).toBeGreaterThan(0);
    }
  });
});
