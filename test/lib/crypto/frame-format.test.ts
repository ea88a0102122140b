import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { finished } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { StorageFileCorruptedError, StorageMetadataError } from '../../../lib/errors/catalogue.ts';
import {
  DEFAULT_FRAME_SIZE,
  FORMAT_VERSION,
  MAX_FRAME_SIZE,
  NONCE_PREFIX_LENGTH,
  TAG_LENGTH,
  cipherRangeFor,
  cipherSize,
  createDecryptStream,
  FrameEncryptor,
  decodeEncryptionMetadata,
  encodeEncryptionMetadata,
  frameCount,
  framesTouched,
  newNoncePrefix,
  type DecryptParams,
  type EncryptionMetadata,
  type FrameParams,
} from '../../../lib/crypto/frame-format.ts';
import {
  KEY_LENGTH,
  KMS_KEK_ID,
  Keyring,
  MAX_WRAPPED_KEY_LENGTH,
  WRAPPED_KEY_LENGTH,
  type RemoteKeyProvider,
} from '../../../lib/crypto/keyring.ts';

/** The encryptor as a stream, so that the same drives feed it as feed the decryptor. */
function createEncryptStream(p: FrameParams): Transform {
  const encryptor = new FrameEncryptor(p);
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      try {
        encryptor.write(chunk, (sealed) => this.push(sealed));
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
    flush(callback) {
      encryptor.end((sealed) => this.push(sealed));
      callback();
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness, so that a failure can be replayed.

/** Pseudo-random bytes: the AES-256-CTR keystream under a key derived from `label`. */
function bytes(length: number, label: string): Buffer {
  const key = createHash('sha256').update(label).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

/** xorshift32: a small seeded generator for sizes, positions and splits. */
function rng(seed: number): (below: number) => number {
  let state = seed >>> 0 || 1;
  return (below: number) => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return Math.floor((state / 2 ** 32) * below);
  };
}

function params(frameSize: number, label = 'file', fileId = `file-${label}`): FrameParams {
  return {
    dataKey: bytes(32, `${label}/key`),
    noncePrefix: bytes(NONCE_PREFIX_LENGTH, `${label}/nonce`),
    frameSize,
    fileId,
  };
}

// ---------------------------------------------------------------------------------------------
// Chunkings: every piece is a view of the input, as a reader of an object body would hand over.

type Chunker = (data: Buffer) => Buffer[];

const whole: Chunker = (data) => [data];

const ones: Chunker = (data) => Array.from({ length: data.length }, (_, i) => data.subarray(i, i + 1));

/** Random lengths in [0, max], empty pieces included. */
function randomSplits(seed: number, max: number): Chunker {
  return (data) => {
    const random = rng(seed);
    const pieces: Buffer[] = [];
    let offset = 0;
    while (offset < data.length) {
      const length = random(max + 1);
      pieces.push(data.subarray(offset, offset + length));
      offset += length;
    }
    return pieces;
  };
}

/** Mostly tiny pieces with the odd huge one. */
function mixedSplits(seed: number, huge: number): Chunker {
  return (data) => {
    const random = rng(seed);
    const pieces: Buffer[] = [];
    let offset = 0;
    while (offset < data.length) {
      const length = random(4) === 0 ? random(huge) + 1 : random(4) + 1;
      pieces.push(data.subarray(offset, offset + length));
      offset += length;
    }
    return pieces;
  };
}

/** 1-byte pieces within `window` bytes of every multiple of `period`, one big piece between them. */
function boundaryBytes(period: number, window: number): Chunker {
  return (data) => {
    const pieces: Buffer[] = [];
    let offset = 0;
    for (let boundary = 0; offset < data.length; boundary += period) {
      const near = Math.max(offset, boundary - window);
      if (near > offset) pieces.push(data.subarray(offset, near));
      offset = near;
      const far = Math.min(data.length, boundary + window);
      for (; offset < far; offset += 1) pieces.push(data.subarray(offset, offset + 1));
    }
    return pieces;
  };
}

// ---------------------------------------------------------------------------------------------
// Driving a stream.

interface Run {
  /** What a consumer of the readable side received. */
  output: Buffer;
  /** Everything the transform ever pushed, even what an error then discarded. */
  emitted: Buffer;
  error: unknown;
}

async function drive(stream: Transform, chunks: Buffer[]): Promise<Run> {
  const pushed: Buffer[] = [];
  const push = stream.push.bind(stream);
  stream.push = (chunk: Buffer | null, encoding?: BufferEncoding) => {
    if (chunk !== null) pushed.push(Buffer.from(chunk));
    return push(chunk, encoding);
  };
  const received: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => received.push(chunk));
  const done = finished(stream);
  for (const chunk of chunks) {
    if (stream.destroyed) break;
    stream.write(chunk);
  }
  if (!stream.destroyed) stream.end();
  let error: unknown;
  try {
    await done;
  } catch (caught) {
    error = caught;
  }
  return { output: Buffer.concat(received), emitted: Buffer.concat(pushed), error };
}

async function encrypt(p: FrameParams, plain: Buffer, chunker: Chunker = whole): Promise<Buffer> {
  const run = await drive(createEncryptStream(p), chunker(plain));
  if (run.error !== undefined) throw run.error;
  return run.output;
}

async function decrypt(p: DecryptParams, cipher: Buffer, chunker: Chunker = whole): Promise<Run> {
  return drive(createDecryptStream(p), chunker(cipher));
}

async function decryptOk(p: DecryptParams, cipher: Buffer, chunker: Chunker = whole): Promise<Buffer> {
  const run = await decrypt(p, cipher, chunker);
  if (run.error !== undefined) throw run.error;
  expect(run.emitted.equals(run.output)).toBe(true);
  return run.output;
}

/** The decryption failed as corruption and released nothing beyond the frames before `badFrame`. */
function expectCorrupted(run: Run, plain: Buffer, frameSize: number, badFrame: number): void {
  expect(run.error).toBeInstanceOf(StorageFileCorruptedError);
  const limit = Math.min(plain.length, badFrame * frameSize);
  for (const released of [run.emitted, run.output]) {
    expect(released.length).toBeLessThanOrEqual(limit);
    expect(released.equals(plain.subarray(0, released.length))).toBe(true);
  }
}

function sealedFrames(cipher: Buffer, frameSize: number): Buffer[] {
  const frames: Buffer[] = [];
  for (let offset = 0; offset < cipher.length; offset += frameSize + TAG_LENGTH) {
    frames.push(cipher.subarray(offset, offset + frameSize + TAG_LENGTH));
  }
  return frames;
}

function flipped(buffer: Buffer, position: number, mask = 0x01): Buffer {
  const copy = Buffer.from(buffer);
  copy[position]! ^= mask;
  return copy;
}

/** Frame count and sealed size worked out from the format description, not from the module. */
function expectedFrames(plainSize: number, frameSize: number): number {
  let frames = 0;
  for (let left = plainSize; left > 0; left -= frameSize) frames += 1;
  return Math.max(frames, 1);
}

const TINY = 16;

// ---------------------------------------------------------------------------------------------

describe('frame sizes', () => {
  it.each([
    [0, 16, 1],
    [1, 16, 1],
    [15, 16, 1],
    [16, 16, 1],
    [17, 16, 2],
    [48, 16, 3],
    [49, 16, 4],
    [0, DEFAULT_FRAME_SIZE, 1],
    [DEFAULT_FRAME_SIZE, DEFAULT_FRAME_SIZE, 1],
    [DEFAULT_FRAME_SIZE + 1, DEFAULT_FRAME_SIZE, 2],
    [100 * 1024 * 1024, DEFAULT_FRAME_SIZE, 1600],
  ])('a %i-byte file in %i-byte frames has %i frames', (plainSize, frameSize, frames) => {
    expect(frameCount(plainSize, frameSize)).toBe(frames);
    expect(cipherSize(plainSize, frameSize)).toBe(plainSize + frames * TAG_LENGTH);
  });

  it('refuses sizes that are not sizes', () => {
    for (const frameSize of [0, -1, 1.5, Number.NaN, Infinity]) {
      expect(() => frameCount(10, frameSize)).toThrow(RangeError);
      expect(() => cipherSize(10, frameSize)).toThrow(RangeError);
    }
    for (const plainSize of [-1, 0.5, Number.NaN, 2 ** 53]) {
      expect(() => frameCount(plainSize, 16)).toThrow(RangeError);
      expect(() => cipherSize(plainSize, 16)).toThrow(RangeError);
    }
  });

  it('the constants are those of the format', () => {
    expect(FORMAT_VERSION).toBe(1);
    expect(DEFAULT_FRAME_SIZE).toBe(65536);
    expect(TAG_LENGTH).toBe(16);
    expect(NONCE_PREFIX_LENGTH).toBe(7);
    expect(newNoncePrefix()).toHaveLength(NONCE_PREFIX_LENGTH);
    expect(newNoncePrefix().equals(newNoncePrefix())).toBe(false);
  });
});

describe('stream parameters', () => {
  it('refuses a data key, nonce prefix or frame size of the wrong size', () => {
    const good = params(TINY);
    const bad: FrameParams[] = [
      { ...good, dataKey: good.dataKey.subarray(0, 31) },
      { ...good, dataKey: Buffer.concat([good.dataKey, Buffer.alloc(1)]) },
      { ...good, noncePrefix: good.noncePrefix.subarray(0, 6) },
      { ...good, noncePrefix: Buffer.alloc(12) },
      { ...good, frameSize: 0 },
      { ...good, frameSize: 1.5 },
    ];
    for (const p of bad) {
      expect(() => createEncryptStream(p)).toThrow(RangeError);
      expect(() => createDecryptStream({ ...p, plainSize: 10 })).toThrow(RangeError);
    }
  });

  it('refuses frame ranges, skips and lengths outside the file', () => {
    const p = { ...params(TINY), plainSize: 40 }; // frames of 16, 16 and 8 bytes
    const bad: Partial<DecryptParams>[] = [
      { firstFrame: -1 },
      { firstFrame: 3 },
      { lastFrame: 3 },
      { firstFrame: 2, lastFrame: 1 },
      { firstFrame: 0.5 },
      { skip: 16 },
      { firstFrame: 2, skip: 8 },
      { skip: -1 },
      { length: 41 },
      { skip: 1, length: 40 },
      { firstFrame: 0, lastFrame: 0, length: 17 },
      { length: -1 },
    ];
    for (const range of bad) expect(() => createDecryptStream({ ...p, ...range }), JSON.stringify(range)).toThrow(RangeError);
    expect(() => createDecryptStream({ ...p, firstFrame: 2, skip: 7, length: 1 })).not.toThrow();
  });

  it('takes its own copy of the data key and nonce prefix', async () => {
    const p = params(TINY, 'copied');
    const plain = bytes(50, 'copied/plain');
    const expected = await encrypt(p, plain);
    const scratch = { ...p, dataKey: Buffer.from(p.dataKey), noncePrefix: Buffer.from(p.noncePrefix) };
    const encryptor = createEncryptStream(scratch);
    const decryptor = createDecryptStream({ ...scratch, plainSize: plain.length });
    scratch.dataKey.fill(0);
    scratch.noncePrefix.fill(0);
    const run = await drive(encryptor, [plain]);
    expect(run.output.equals(expected)).toBe(true);
    expect((await drive(decryptor, [expected])).output.equals(plain)).toBe(true);
  });
});

describe('the sealed layout', () => {
  // Decrypts each frame with nothing but the description at the top of frame-format.ts.
  function openByHand(p: FrameParams, cipher: Buffer, plainSize: number): Buffer {
    const frames = expectedFrames(plainSize, p.frameSize);
    const out: Buffer[] = [];
    let offset = 0;
    for (let i = 0; i < frames; i += 1) {
      const length = Math.min(p.frameSize, plainSize - i * p.frameSize);
      const nonce = Buffer.alloc(12);
      p.noncePrefix.copy(nonce, 0);
      nonce.writeUInt32BE(i, 7);
      nonce[11] = i === frames - 1 ? 1 : 0;
      const decipher = createDecipheriv('aes-256-gcm', p.dataKey, nonce, { authTagLength: 16 });
      decipher.setAAD(Buffer.from(`transcribo/v1/${p.fileId}`, 'utf8'));
      decipher.setAuthTag(cipher.subarray(offset + length, offset + length + 16));
      out.push(decipher.update(cipher.subarray(offset, offset + length)), decipher.final());
      offset += length + 16;
    }
    expect(offset).toBe(cipher.length);
    return Buffer.concat(out);
  }

  it.each([0, 1, 15, 16, 17, 48, 50])('a %i-byte file in 16-byte frames is the documented frames back to back', async (size) => {
    const p = params(TINY, `layout-${size}`, 'fïle/ünicode');
    const plain = bytes(size, `layout-${size}/plain`);
    const cipher = await encrypt(p, plain);
    expect(openByHand(p, cipher, size).equals(plain)).toBe(true);
  });

  it('uses the default frame size as documented too', async () => {
    const p = params(DEFAULT_FRAME_SIZE, 'layout-default');
    const plain = bytes(2 * DEFAULT_FRAME_SIZE + 3, 'layout-default/plain');
    expect(openByHand(p, await encrypt(p, plain), plain.length).equals(plain)).toBe(true);
  });

  it('seals the same file differently under another nonce prefix, key or file id', async () => {
    const p = params(TINY, 'variants');
    const plain = bytes(40, 'variants/plain');
    const base = await encrypt(p, plain);
    const others = [
      await encrypt({ ...p, noncePrefix: bytes(7, 'other nonce') }, plain),
      await encrypt({ ...p, dataKey: bytes(32, 'other key') }, plain),
      await encrypt({ ...p, fileId: 'file-other' }, plain),
    ];
    for (const other of others) {
      expect(other).toHaveLength(base.length);
      for (const [i, frame] of sealedFrames(other, TINY).entries()) {
        expect(frame.equals(sealedFrames(base, TINY)[i]!)).toBe(false);
      }
    }
  });
});

describe('round trips', () => {
  const chunkers = (frameSize: number): [string, Chunker][] => [
    ['one chunk', whole],
    ['random splits', randomSplits(frameSize * 7 + 1, 2 * frameSize + TAG_LENGTH)],
    ['small splits', randomSplits(frameSize * 11 + 3, 5)],
    ['mixed splits', mixedSplits(frameSize + 5, 3 * frameSize)],
    ['frame boundaries byte by byte', boundaryBytes(frameSize, TAG_LENGTH + 3)],
    ['sealed-frame boundaries byte by byte', boundaryBytes(frameSize + TAG_LENGTH, TAG_LENGTH + 3)],
  ];

  /** `small`: decrypt each ciphertext under every chunking; otherwise under one chunk and the next chunking. */
  async function roundTrip(frameSize: number, size: number, label: string, small: boolean): Promise<void> {
    const p = params(frameSize, label);
    const plain = bytes(size, `${label}/plain`);
    const pristine = Buffer.from(plain);
    const list = chunkers(frameSize).filter(([name]) => small || name !== 'small splits');
    if (small) list.push(['1-byte chunks', ones]);
    let reference: Buffer | undefined;
    for (const [i, [name, chunker]] of list.entries()) {
      const cipher = await encrypt(p, plain, chunker);
      // The encryptor may keep views of its input but must never write into it.
      expect(plain.equals(pristine), `${name}: input untouched`).toBe(true);
      expect(cipher.length, name).toBe(cipherSize(size, frameSize));
      expect(cipher.length, name).toBe(size + expectedFrames(size, frameSize) * TAG_LENGTH);
      expect(frameCount(size, frameSize), name).toBe(expectedFrames(size, frameSize));
      // The same key and nonce prefix seal the same bytes, whatever the chunking.
      reference ??= cipher;
      expect(cipher.equals(reference), `${name}: same ciphertext`).toBe(true);
      const decryptions = small ? list : [list[0]!, list[(i + 1) % list.length]!];
      for (const [decryptName, decryptChunker] of decryptions) {
        const out = await decryptOk({ ...p, plainSize: size }, cipher, decryptChunker);
        expect(out.equals(plain), `${name} then ${decryptName}`).toBe(true);
      }
    }
  }

  const sizes = (frameSize: number, seed: number, count: number, max: number): number[] => {
    const random = rng(seed);
    const fixed = [0, 1, frameSize - 1, frameSize, frameSize + 1, 3 * frameSize];
    return [...fixed, ...Array.from({ length: count }, () => random(max) + 1)];
  };

  it.each(sizes(TINY, 99, 12, 20 * TINY))('%i bytes in 16-byte frames, every chunking', async (size) => {
    await roundTrip(TINY, size, `tiny-${size}`, true);
  });

  it.each(sizes(DEFAULT_FRAME_SIZE, 7, 3, 4 * DEFAULT_FRAME_SIZE))(
    '%i bytes in default frames, every chunking',
    async (size) => {
      await roundTrip(DEFAULT_FRAME_SIZE, size, `default-${size}`, size <= 2);
    },
  );

  it('seals a small file written a byte at a time in default frames', async () => {
    const p = params(DEFAULT_FRAME_SIZE, 'bytewise');
    const plain = bytes(3000, 'bytewise/plain');
    const cipher = await encrypt(p, plain, ones);
    expect(cipher.equals(await encrypt(p, plain))).toBe(true);
    expect((await decryptOk({ ...p, plainSize: plain.length }, cipher, ones)).equals(plain)).toBe(true);
  });

  it('seals frame sizes of 1 and of odd lengths', async () => {
    for (const frameSize of [1, 3, 17, 1000]) {
      const p = params(frameSize, `odd-${frameSize}`);
      const plain = bytes(2500, `odd-${frameSize}/plain`);
      const cipher = await encrypt(p, plain, randomSplits(frameSize, 2 * frameSize + 20));
      expect(cipher).toHaveLength(cipherSize(plain.length, frameSize));
      const out = await decryptOk({ ...p, plainSize: plain.length }, cipher, randomSplits(frameSize + 1, 3 * frameSize));
      expect(out.equals(plain)).toBe(true);
    }
  });
});

describe('framesTouched (ranges before the file size is known)', () => {
  it('names the frames cipherRangeFor names, ending on whole frames', () => {
    const fs = 16;
    const stride = fs + TAG_LENGTH;
    for (const [start, end] of [[0, 0], [15, 16], [17, 47], [32, 82]] as const) {
      const known = cipherRangeFor(start, end, 83, fs);
      const early = framesTouched(start, end, fs);
      expect([early.firstFrame, early.lastFrame, early.cipherStart]).toEqual([known.firstFrame, known.lastFrame, known.cipherStart]);
      expect(early.cipherEndInclusive).toBe((known.lastFrame + 1) * stride - 1);
      expect(early.cipherEndInclusive).toBeGreaterThanOrEqual(known.cipherEndInclusive);
    }
  });

  it('leaves an open range open', () => {
    expect(framesTouched(40, undefined, 16)).toEqual({ firstFrame: 2, lastFrame: undefined, cipherStart: 64, cipherEndInclusive: undefined });
  });
});

describe('range reads', () => {
  async function readRange(
    p: FrameParams,
    cipher: Buffer,
    plainSize: number,
    start: number,
    end: number,
    chunker: Chunker = whole,
  ): Promise<Buffer> {
    const range = cipherRangeFor(start, end, plainSize, p.frameSize);
    const sealed = p.frameSize + TAG_LENGTH;
    // Whole sealed frames, and only those the range touches.
    expect(range.firstFrame).toBe(Math.floor(start / p.frameSize));
    expect(range.lastFrame).toBe(Math.floor(end / p.frameSize));
    expect(range.cipherStart).toBe(range.firstFrame * sealed);
    expect(range.cipherEndInclusive + 1).toBe(Math.min((range.lastFrame + 1) * sealed, cipher.length));
    expect(range.skip).toBe(start - range.firstFrame * p.frameSize);
    expect(range.length).toBe(end - start + 1);
    const slice = cipher.subarray(range.cipherStart, range.cipherEndInclusive + 1);
    return decryptOk(
      {
        ...p,
        plainSize,
        firstFrame: range.firstFrame,
        lastFrame: range.lastFrame,
        skip: range.skip,
        length: range.length,
      },
      slice,
      chunker,
    );
  }

  it.each([83, 64, 5])('every range of a %i-byte file in 16-byte frames', async (size) => {
    const p = params(TINY, `ranges-${size}`);
    const plain = bytes(size, `ranges-${size}/plain`);
    const cipher = await encrypt(p, plain);
    const random = rng(size);
    let checked = 0;
    for (let start = 0; start < size; start += 1) {
      for (let end = start; end < size; end += 1) {
        const chunker = random(8) === 0 ? randomSplits(random(1000) + 1, 20) : whole;
        const out = await readRange(p, cipher, size, start, end, chunker);
        if (!out.equals(plain.subarray(start, end + 1))) {
          expect.fail(`bytes ${start}-${end}: got ${out.toString('hex')}`);
        }
        checked += 1;
      }
    }
    expect(checked).toBe((size * (size + 1)) / 2);
  });

  it('random ranges of a 1 MB file in default frames', async () => {
    const size = 1024 * 1024 + 12345;
    const frameSize = DEFAULT_FRAME_SIZE;
    const p = params(frameSize, 'ranges-large');
    const plain = bytes(size, 'ranges-large/plain');
    const cipher = await encrypt(p, plain, randomSplits(3, 200_000));
    const random = rng(2024);
    const ranges: [number, number][] = [
      [0, size - 1],
      [0, 0],
      [size - 1, size - 1],
      [0, frameSize - 1],
      [frameSize - 1, frameSize],
      [frameSize, 2 * frameSize - 1],
      [16 * frameSize, size - 1],
      [16 * frameSize - 1, size - 1],
    ];
    while (ranges.length < 120) {
      const start = random(size);
      const span = random(3) === 0 ? random(size - start) : random(Math.min(3 * frameSize, size - start));
      ranges.push([start, start + span]);
    }
    for (const [i, [start, end]] of ranges.entries()) {
      const chunker = i % 4 === 0 ? mixedSplits(i, 100_000) : whole;
      const out = await readRange(p, cipher, size, start, end, chunker);
      expect(out.equals(plain.subarray(start, end + 1)), `bytes ${start}-${end}`).toBe(true);
    }
  });

  it('refuses ranges that are not in the file', () => {
    for (const [start, end] of [
      [-1, 3],
      [0, 40],
      [5, 4],
      [0.5, 3],
      [40, 40],
    ] as const) {
      expect(() => cipherRangeFor(start, end, 40, TINY)).toThrow(RangeError);
    }
    expect(() => cipherRangeFor(0, 0, 0, TINY)).toThrow(RangeError);
    expect(() => cipherRangeFor(0, 0, 1, 0)).toThrow(RangeError);
  });
});

describe('tampering', () => {
  const SIZE = 6 * TINY + 5; // seven frames, the last one short

  async function tinyFile(label: string) {
    const p = params(TINY, label);
    const plain = bytes(SIZE, `${label}/plain`);
    const cipher = await encrypt(p, plain);
    return { p, plain, cipher, d: { ...p, plainSize: SIZE } };
  }

  it('a flipped bit anywhere in a small file fails its frame, before any of it is released', async () => {
    const { plain, cipher, d } = await tinyFile('flip-all');
    const random = rng(5);
    for (let position = 0; position < cipher.length; position += 1) {
      const chunker = [whole, ones, randomSplits(position + 1, 40)][position % 3]!;
      const run = await decrypt(d, flipped(cipher, position, 1 << random(8)), chunker);
      expectCorrupted(run, plain, TINY, Math.floor(position / (TINY + TAG_LENGTH)));
    }
  });

  it('a flipped byte in a default-frame file fails the frame it is in', async () => {
    const frameSize = DEFAULT_FRAME_SIZE;
    const sealed = frameSize + TAG_LENGTH;
    const p = params(frameSize, 'flip-default');
    const plain = bytes(3 * frameSize + 1000, 'flip-default/plain');
    const cipher = await encrypt(p, plain);
    const last = cipher.length - 1;
    const positions = [
      0, // first byte of the first frame
      frameSize - 1, // last ciphertext byte of the first frame
      frameSize, // first byte of the first tag
      sealed - 1, // last byte of the first tag
      sealed + 12345, // inside the second frame
      2 * sealed + frameSize + 7, // inside the third tag
      3 * sealed, // first byte of the last frame
      last - TAG_LENGTH, // last ciphertext byte of the last frame
      last - 8, // inside the last tag
      last, // last byte of the file
    ];
    for (const [i, position] of positions.entries()) {
      const chunker = i % 2 === 0 ? whole : boundaryBytes(sealed, 24);
      const run = await decrypt({ ...p, plainSize: plain.length }, flipped(cipher, position, 0x80), chunker);
      expectCorrupted(run, plain, frameSize, Math.floor(position / sealed));
    }
  });

  it('a flipped byte inside a range read fails it', async () => {
    const { plain, cipher, d } = await tinyFile('flip-range');
    const range = cipherRangeFor(20, 70, SIZE, TINY); // frames 1..4
    const slice = cipher.subarray(range.cipherStart, range.cipherEndInclusive + 1);
    for (let position = 0; position < slice.length; position += 1) {
      const run = await decrypt({ ...d, ...range }, flipped(slice, position));
      expect(run.error, `position ${position}`).toBeInstanceOf(StorageFileCorruptedError);
      const badFrame = range.firstFrame + Math.floor(position / (TINY + TAG_LENGTH));
      const limit = Math.max(0, badFrame * TINY - 20);
      expect(run.emitted.length).toBeLessThanOrEqual(limit);
      expect(run.emitted.equals(plain.subarray(20, 20 + run.emitted.length))).toBe(true);
    }
  });

  it('an empty file has a tag that is checked', async () => {
    const p = params(TINY, 'empty');
    const cipher = await encrypt(p, Buffer.alloc(0));
    expect(cipher).toHaveLength(TAG_LENGTH);
    expect(await decryptOk({ ...p, plainSize: 0 }, cipher)).toHaveLength(0);
    for (let position = 0; position < TAG_LENGTH; position += 1) {
      const run = await decrypt({ ...p, plainSize: 0 }, flipped(cipher, position));
      expect(run.error).toBeInstanceOf(StorageFileCorruptedError);
    }
    expect((await decrypt({ ...p, plainSize: 0 }, Buffer.alloc(0))).error).toBeInstanceOf(StorageFileCorruptedError);
  });

  it('swapped frames fail', async () => {
    const { plain, cipher, d } = await tinyFile('swap');
    const frames = sealedFrames(cipher, TINY);
    for (const [a, b] of [
      [0, 1],
      [1, 2],
      [2, 5],
    ] as const) {
      const swapped = [...frames];
      [swapped[a], swapped[b]] = [swapped[b]!, swapped[a]!];
      expectCorrupted(await decrypt(d, Buffer.concat(swapped)), plain, TINY, a);
    }
    // A frame repeated in place of another.
    const repeated = [...frames];
    repeated[3] = frames[2]!;
    expectCorrupted(await decrypt(d, Buffer.concat(repeated)), plain, TINY, 3);
  });

  it('a dropped frame fails', async () => {
    const { plain, cipher, d } = await tinyFile('drop');
    const frames = sealedFrames(cipher, TINY);
    expectCorrupted(await decrypt(d, Buffer.concat(frames.slice(0, -1))), plain, TINY, frames.length - 1);
    expectCorrupted(await decrypt(d, Buffer.concat(frames.slice(1))), plain, TINY, 0);
    expectCorrupted(await decrypt(d, Buffer.concat([...frames.slice(0, 2), ...frames.slice(3)])), plain, TINY, 2);
  });

  it('a truncated final frame fails', async () => {
    const { plain, cipher, d } = await tinyFile('truncate');
    const lastFrame = frameCount(SIZE, TINY) - 1;
    for (const cut of [1, 8, TAG_LENGTH - 1, TAG_LENGTH, TAG_LENGTH + 1, TAG_LENGTH + 4]) {
      const run = await decrypt(d, cipher.subarray(0, cipher.length - cut), ones);
      expectCorrupted(run, plain, TINY, lastFrame);
    }
  });

  it('a file cut exactly at a frame boundary fails, even when the recorded size is cut to match', async () => {
    const { p, plain, cipher, d } = await tinyFile('cut');
    for (const frames of [1, 3, 6]) {
      const cut = cipher.subarray(0, frames * (TINY + TAG_LENGTH));
      // Against the recorded size: the body ends early.
      expectCorrupted(await decrypt(d, cut), plain, TINY, frames);
      // Against a size shortened to the cut: its new last frame was not sealed as final.
      const shortened = frames * TINY;
      expectCorrupted(await decrypt({ ...p, plainSize: shortened }, cut), plain, TINY, frames - 1);
    }
    // Same in default frames.
    const big = params(DEFAULT_FRAME_SIZE, 'cut-default');
    const bigPlain = bytes(2 * DEFAULT_FRAME_SIZE + 10, 'cut-default/plain');
    const bigCipher = await encrypt(big, bigPlain);
    const bigCut = bigCipher.subarray(0, 2 * (DEFAULT_FRAME_SIZE + TAG_LENGTH));
    const run = await decrypt({ ...big, plainSize: 2 * DEFAULT_FRAME_SIZE }, bigCut);
    expectCorrupted(run, bigPlain, DEFAULT_FRAME_SIZE, 1);
  });

  it('a file that is exactly frames long still needs its final flag', async () => {
    // A 64-byte file cut to 48 bytes: every frame is full, only the flag tells the last apart.
    const p = params(TINY, 'full-frames');
    const plain = bytes(4 * TINY, 'full-frames/plain');
    const cipher = await encrypt(p, plain);
    const cut = cipher.subarray(0, 3 * (TINY + TAG_LENGTH));
    expectCorrupted(await decrypt({ ...p, plainSize: 3 * TINY }, cut, ones), plain, TINY, 2);
  });

  it('bytes appended after the last frame fail', async () => {
    const { p, plain, cipher, d } = await tinyFile('append');
    const lastFrame = frameCount(SIZE, TINY) - 1;
    const another = await encrypt(p, bytes(TINY, 'append/other'));
    for (const extra of [Buffer.alloc(1), bytes(TAG_LENGTH, 'append/tag'), another, sealedFrames(cipher, TINY)[0]!]) {
      for (const chunker of [whole, ones]) {
        const run = await decrypt(d, Buffer.concat([cipher, extra]), chunker);
        expectCorrupted(run, plain, TINY, lastFrame + 1);
      }
    }
    // In a range read as well.
    const range = cipherRangeFor(0, 20, SIZE, TINY);
    const slice = cipher.subarray(range.cipherStart, range.cipherEndInclusive + 2);
    const run = await decrypt({ ...d, ...range }, slice);
    expect(run.error).toBeInstanceOf(StorageFileCorruptedError);
  });

  it('a recorded size that disagrees with the body fails', async () => {
    const { p, plain, cipher } = await tinyFile('size');
    for (const plainSize of [SIZE - 1, SIZE + 1, SIZE - 5, SIZE + 11]) {
      const run = await decrypt({ ...p, plainSize }, cipher);
      expectCorrupted(run, plain, TINY, frameCount(SIZE, TINY) - 1);
    }
  });

  it('the wrong file id, data key or nonce prefix fails from the first frame', async () => {
    const { plain, cipher, d } = await tinyFile('wrong');
    const wrong: DecryptParams[] = [
      { ...d, fileId: 'file-someone-else' },
      { ...d, fileId: `${d.fileId}x` },
      { ...d, fileId: '' },
      { ...d, dataKey: flipped(d.dataKey, 31) },
      { ...d, dataKey: bytes(KEY_LENGTH, 'wrong/another data key') },
      { ...d, noncePrefix: flipped(d.noncePrefix, 0) },
      { ...d, noncePrefix: flipped(d.noncePrefix, 6, 0x80) },
    ];
    for (const p of wrong) {
      const run = await decrypt(p, cipher);
      expectCorrupted(run, plain, TINY, 0);
      expect(run.emitted).toHaveLength(0);
      expect((run.error as StorageFileCorruptedError).fileId).toBe(p.fileId);
    }
  });

  it('a frame moved from another file with the same key and prefix fails', async () => {
    const a = params(TINY, 'shared', 'file-a');
    const b = { ...a, fileId: 'file-b' };
    const plainA = bytes(SIZE, 'moved/a');
    const plainB = bytes(SIZE, 'moved/b');
    const framesA = sealedFrames(await encrypt(a, plainA), TINY);
    const framesB = sealedFrames(await encrypt(b, plainB), TINY);
    const mixed = [...framesA];
    mixed[2] = framesB[2]!;
    expectCorrupted(await decrypt({ ...a, plainSize: SIZE }, Buffer.concat(mixed)), plainA, TINY, 2);
  });
});

describe('encryption metadata', () => {
  const sample: EncryptionMetadata = {
    version: FORMAT_VERSION,
    kekId: 'kek-2024_b',
    wrappedKey: bytes(WRAPPED_KEY_LENGTH, 'meta/wrapped'),
    noncePrefix: bytes(NONCE_PREFIX_LENGTH, 'meta/nonce'),
    frameSize: DEFAULT_FRAME_SIZE,
  };
  const encoded = encodeEncryptionMetadata(sample);

  function expectMetadataError(meta: Record<string, string | undefined>, field: string): void {
    let error: unknown;
    try {
      decodeEncryptionMetadata(meta, 'file-meta');
    } catch (caught) {
      error = caught;
    }
    expect(error, JSON.stringify(meta)).toBeInstanceOf(StorageMetadataError);
    expect((error as StorageMetadataError).fileId).toBe('file-meta');
    expect((error as StorageMetadataError).details).toMatchObject({ field });
  }

  it('round trips through S3-safe user metadata', () => {
    expect(Object.keys(encoded).sort()).toEqual(['enc-frame', 'enc-kek', 'enc-key', 'enc-nonce', 'enc-version']);
    for (const [key, value] of Object.entries(encoded)) {
      expect(key).toBe(key.toLowerCase());
      expect(value).toMatch(/^[A-Za-z0-9_-]+$/);
    }
    expect(encoded['enc-version']).toBe('1');
    expect(decodeEncryptionMetadata(encoded)).toEqual(sample);
    for (const frameSize of [1, 16, 1000, MAX_FRAME_SIZE]) {
      for (const label of ['a', 'b', 'c']) {
        const m = {
          ...sample,
          frameSize,
          wrappedKey: bytes(WRAPPED_KEY_LENGTH, `meta/${label}/${frameSize}`),
          noncePrefix: bytes(NONCE_PREFIX_LENGTH, `meta/n/${label}/${frameSize}`),
        };
        const decoded = decodeEncryptionMetadata(encodeEncryptionMetadata(m), 'file-x');
        expect(decoded).toEqual(m);
        expect(Buffer.isBuffer(decoded.wrappedKey)).toBe(true);
      }
    }
  });

  it('ignores metadata that is not its own', () => {
    expect(decodeEncryptionMetadata({ ...encoded, 'content-sha256': 'abc', other: undefined })).toEqual(sample);
  });

  it.each(['enc-version', 'enc-kek', 'enc-key', 'enc-nonce', 'enc-frame'])('refuses metadata without %s', (field) => {
    const { [field]: _dropped, ...rest } = encoded;
    expectMetadataError(rest, field);
    expectMetadataError({ ...encoded, [field]: '' }, field);
    expectMetadataError({ ...encoded, [field]: undefined }, field);
  });

  it('refuses unknown and non-canonical versions', () => {
    for (const version of ['0', '2', '10', '999999', '01', '1.0', '1 ', ' 1', '+1', '1e0', '0x1', 'v1', '-1', '1000000', 'one']) {
      expectMetadataError({ ...encoded, 'enc-version': version }, 'enc-version');
    }
  });

  it('reads the version before anything else', () => {
    expectMetadataError({ 'enc-version': '2' }, 'enc-version');
  });

  it('refuses unreadable key-encryption key ids', () => {
    for (const kekId of ['a b', 'k/1', 'k:1', 'k.1', 'k,1', 'clé']) {
      expectMetadataError({ ...encoded, 'enc-kek': kekId }, 'enc-kek');
    }
  });

  it('refuses garbage base64 and non-canonical encodings', () => {
    const key = encoded['enc-key']!;
    const nonce = encoded['enc-nonce']!;
    const lastBitsSet = (text: string) => {
      // The last character carries stray low bits: another text for the same bytes.
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(text.at(-1)!);
      return text.slice(0, -1) + alphabet[last | 1];
    };
    expect(Buffer.from(lastBitsSet(key), 'base64url').equals(sample.wrappedKey)).toBe(true);
    const badKeys = [
      '!!!!',
      `${key.slice(0, -1)}!`,
      `${key}=`,
      `${key}==`,
      ` ${key}`,
      `${key}\n`,
      key.replace(/./, '*'),
      sample.wrappedKey.toString('base64'),
      sample.wrappedKey.toString('hex'),
      lastBitsSet(key),
    ].filter((text) => text !== key);
    for (const text of badKeys) expectMetadataError({ ...encoded, 'enc-key': text }, 'enc-key');
    const badNonces = [
      '@@@@@@@@@@',
      `${nonce}=`,
      `${nonce} `,
      sample.noncePrefix.toString('hex'),
      lastBitsSet(nonce),
    ].filter((text) => text !== nonce);
    for (const text of badNonces) expectMetadataError({ ...encoded, 'enc-nonce': text }, 'enc-nonce');
  });

  it('refuses a wrapped key or nonce prefix of the wrong length', () => {
    for (const length of [0, 1, 32, 39, 41, 48]) {
      const text = bytes(length, `len/${length}`).toString('base64url');
      expectMetadataError({ ...encoded, 'enc-key': text || 'A' }, 'enc-key');
    }
    for (const length of [1, 6, 8, 12]) {
      const text = bytes(length, `len/${length}`).toString('base64url');
      expectMetadataError({ ...encoded, 'enc-nonce': text }, 'enc-nonce');
    }
  });

  it('refuses absurd frame sizes', () => {
    const bad = [
      '0',
      '-1',
      '-65536',
      '1.5',
      '65536.0',
      '065536',
      '1e3',
      '0x10',
      ' 16',
      '16 ',
      'abc',
      String(MAX_FRAME_SIZE + 1),
      String(2 ** 32),
      '99999999999999999999',
      'Infinity',
      'NaN',
    ];
    for (const frame of bad) expectMetadataError({ ...encoded, 'enc-frame': frame }, 'enc-frame');
    expect(decodeEncryptionMetadata({ ...encoded, 'enc-frame': String(MAX_FRAME_SIZE) }).frameSize).toBe(MAX_FRAME_SIZE);
    expect(decodeEncryptionMetadata({ ...encoded, 'enc-frame': '1' }).frameSize).toBe(1);
  });
});

describe('the whole envelope', () => {
  it('data key wrapped in metadata, frames in the body, a range read back', async () => {
    const keyring = new Keyring([{ id: 'k1', key: bytes(32, 'envelope/kek') }], 'k1');
    const { dataKey, kekId, wrappedKey } = await keyring.newDataKey();
    const meta = encodeEncryptionMetadata({
      version: FORMAT_VERSION,
      kekId,
      wrappedKey,
      noncePrefix: newNoncePrefix(),
      frameSize: 1000,
    });
    const plain = bytes(5555, 'envelope/plain');
    const read = decodeEncryptionMetadata(meta, 'file-env');
    const p: FrameParams = { dataKey, noncePrefix: read.noncePrefix, frameSize: read.frameSize, fileId: 'file-env' };
    const cipher = await encrypt(p, plain, randomSplits(1, 700));
    const unwrapped = await keyring.unwrap(read.kekId, read.wrappedKey, 'file-env');
    expect(unwrapped.equals(dataKey)).toBe(true);
    const range = cipherRangeFor(1500, 4321, plain.length, read.frameSize);
    const out = await decryptOk(
      { ...p, dataKey: unwrapped, plainSize: plain.length, ...range },
      cipher.subarray(range.cipherStart, range.cipherEndInclusive + 1),
    );
    expect(out.equals(plain.subarray(1500, 4322))).toBe(true);
  });
});

describe('encryption metadata of a KMS-wrapped key', () => {
  const staticSample: EncryptionMetadata = {
    version: FORMAT_VERSION,
    kekId: 'k1',
    wrappedKey: bytes(WRAPPED_KEY_LENGTH, 'kms-meta/static'),
    noncePrefix: bytes(NONCE_PREFIX_LENGTH, 'kms-meta/nonce'),
    frameSize: DEFAULT_FRAME_SIZE,
  };
  // A KMS ciphertext blob of a 32-byte data key is 184 bytes.
  const blob = bytes(184, 'kms-meta/blob');
  const kmsSample: EncryptionMetadata = { ...staticSample, kekId: KMS_KEK_ID, wrappedKey: blob };
  const kmsEncoded = encodeEncryptionMetadata(kmsSample);

  function expectKeyError(meta: Record<string, string | undefined>): void {
    let error: unknown;
    try {
      decodeEncryptionMetadata(meta, 'file-kms');
    } catch (caught) {
      error = caught;
    }
    expect(error, JSON.stringify(meta).slice(0, 200)).toBeInstanceOf(StorageMetadataError);
    expect((error as StorageMetadataError).fileId).toBe('file-kms');
    expect((error as StorageMetadataError).details).toMatchObject({ field: 'enc-key' });
  }

  it('reads a 184-byte wrapped key under kms, and any length from 1 to MAX_WRAPPED_KEY_LENGTH', () => {
    expect(kmsEncoded['enc-kek']).toBe('kms');
    const decoded = decodeEncryptionMetadata(kmsEncoded, 'file-kms');
    expect(decoded).toEqual(kmsSample);
    expect(decoded.wrappedKey).toHaveLength(184);
    for (const length of [1, 2, 40, 41, 500, MAX_WRAPPED_KEY_LENGTH - 1, MAX_WRAPPED_KEY_LENGTH]) {
      const m = { ...kmsSample, wrappedKey: bytes(length, `kms-meta/${length}`) };
      expect(decodeEncryptionMetadata(encodeEncryptionMetadata(m), 'file-kms'), `${length} bytes`).toEqual(m);
    }
  });

  it('refuses a kms wrapped key of 0 bytes or of more than MAX_WRAPPED_KEY_LENGTH', () => {
    expectKeyError({ ...kmsEncoded, 'enc-key': '' });
    // 'A' is base64url of nothing at all.
    expectKeyError({ ...kmsEncoded, 'enc-key': 'A' });
    for (const length of [MAX_WRAPPED_KEY_LENGTH + 1, MAX_WRAPPED_KEY_LENGTH + 2, 4096, 65536]) {
      expectKeyError({ ...kmsEncoded, 'enc-key': bytes(length, `kms-meta/long/${length}`).toString('base64url') });
    }
  });

  it('refuses a non-canonical kms wrapped key', () => {
    const text = kmsEncoded['enc-key']!;
    for (const bad of [`${text}=`, ` ${text}`, `${text}\n`, `${text.slice(0, -1)}!`, blob.toString('base64')]) {
      // (hex is not listed: with no fixed length, hex text is also canonical base64url of other bytes.)
      if (bad !== text) expectKeyError({ ...kmsEncoded, 'enc-key': bad });
    }
  });

  it('refuses a 184-byte wrapped key under a static key id, even one close to kms', () => {
    for (const kekId of ['k1', 'KMS', 'Kms', 'kms1', 'kms_', 'kms-2']) {
      expectKeyError({ ...kmsEncoded, 'enc-kek': kekId });
    }
    // The same ids with a 40-byte key are fine: only the length was wrong.
    expect(decodeEncryptionMetadata({ ...encodeEncryptionMetadata(staticSample), 'enc-kek': 'KMS' }).kekId).toBe('KMS');
  });

  it('a whole envelope under a remote KEK: blob in metadata, frames in the body', async () => {
    // A stand-in for KMS whose blobs are 184 bytes: iv ‖ AES-256-GCM(data key) ‖ tag ‖ padding it checks.
    const remoteKey = bytes(32, 'kms-meta/remote');
    const seal = (dataKey: Buffer) => {
      const iv = bytes(12, `kms-meta/iv/${dataKey.toString('hex')}`);
      const c = createCipheriv('aes-256-gcm', remoteKey, iv);
      return Buffer.concat([iv, c.update(dataKey), c.final(), c.getAuthTag(), Buffer.alloc(184 - 60)]);
    };
    let unwrapped = 0;
    const remote: RemoteKeyProvider = {
      id: KMS_KEK_ID,
      generateDataKey: async () => {
        const dataKey = bytes(KEY_LENGTH, 'kms-meta/data key');
        return { dataKey, wrappedKey: seal(dataKey) };
      },
      wrap: async (dataKey) => seal(dataKey),
      unwrap: async (wrappedKey) => {
        unwrapped += 1;
        const d = createDecipheriv('aes-256-gcm', remoteKey, wrappedKey.subarray(0, 12));
        d.setAuthTag(wrappedKey.subarray(44, 60));
        return Buffer.concat([d.update(wrappedKey.subarray(12, 44)), d.final()]);
      },
    };
    const keyring = new Keyring([{ id: 'k1', key: bytes(32, 'envelope/kek') }], KMS_KEK_ID, remote);
    const { dataKey, kekId, wrappedKey } = await keyring.newDataKey();
    expect(wrappedKey).toHaveLength(184);
    const meta = encodeEncryptionMetadata({ version: FORMAT_VERSION, kekId, wrappedKey, noncePrefix: newNoncePrefix(), frameSize: 700 });
    const read = decodeEncryptionMetadata(meta, 'file-kms-env');
    expect(read.kekId).toBe(KMS_KEK_ID);
    const plain = bytes(3000, 'kms-meta/plain');
    const p: FrameParams = { dataKey, noncePrefix: read.noncePrefix, frameSize: read.frameSize, fileId: 'file-kms-env' };
    const cipher = await encrypt(p, plain, randomSplits(2, 500));
    const opened = await keyring.unwrap(read.kekId, read.wrappedKey, 'file-kms-env');
    expect(unwrapped).toBe(1);
    expect(opened.equals(dataKey)).toBe(true);
    expect((await decryptOk({ ...p, dataKey: opened, plainSize: plain.length }, cipher)).equals(plain)).toBe(true);
  });
});

describe('stream edges', () => {
  it('an empty write after the last full frame does not make that frame non-final', async () => {
    // Body readers may hand over empty chunks; the held frame must still wait for real data or the end.
    const p = params(TINY, 'empty-writes');
    for (const size of [TINY, 2 * TINY, 0, 5]) {
      const plain = bytes(size, `empty-writes/${size}`);
      const expected = await encrypt(p, plain);
      const withEmpties = await encrypt(p, plain, (data) => [Buffer.alloc(0), data, Buffer.alloc(0), Buffer.alloc(0)]);
      expect(withEmpties.equals(expected), `${size} bytes`).toBe(true);
      expect(withEmpties).toHaveLength(cipherSize(size, TINY));
    }
  });

  it('decrypts a run of frames to all their plaintext when no length is given', async () => {
    const p = params(TINY, 'run-defaults');
    const plain = bytes(40, 'run-defaults/plain'); // frames of 16, 16 and 8 bytes
    const cipher = await encrypt(p, plain);
    const stride = TINY + TAG_LENGTH;
    const d = { ...p, plainSize: 40 };
    expect((await decryptOk({ ...d, firstFrame: 1 }, cipher.subarray(stride))).equals(plain.subarray(16))).toBe(true);
    expect((await decryptOk({ ...d, firstFrame: 1, lastFrame: 1 }, cipher.subarray(stride, 2 * stride))).equals(plain.subarray(16, 32))).toBe(true);
    // With a skip and no length: the rest of the run.
    expect((await decryptOk({ ...d, firstFrame: 1, skip: 3 }, cipher.subarray(stride))).equals(plain.subarray(19))).toBe(true);
    expect((await decryptOk({ ...d, skip: 5 }, cipher)).equals(plain.subarray(5))).toBe(true);
  });

  it('refuses a length past the end of a run that does not start at frame 0', () => {
    const p = { ...params(TINY), plainSize: 40 };
    for (const range of [
      { firstFrame: 1, lastFrame: 1, length: 17 },
      { firstFrame: 1, length: 25 },
      { firstFrame: 1, skip: 1, length: 24 },
      { firstFrame: 2, length: 9 },
    ]) {
      expect(() => createDecryptStream({ ...p, ...range }), JSON.stringify(range)).toThrow(RangeError);
    }
    expect(() => createDecryptStream({ ...p, firstFrame: 1, skip: 1, length: 23 })).not.toThrow();
    expect(() => createDecryptStream({ ...p, firstFrame: 1, lastFrame: 1, length: 16 })).not.toThrow();
  });

  it('refuses a recorded size needing more than 2^32 frames as a metadata error, and takes 2^32', () => {
    // The frame index is a uint32 in the nonce: the size comes from the manifest, so this is bad metadata.
    const p = params(1, 'max-frames', 'file-huge');
    let error: unknown;
    try {
      createDecryptStream({ ...p, plainSize: 2 ** 32 + 1 });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(StorageMetadataError);
    expect(error).toMatchObject({ operation: 'decrypt', fileId: 'file-huge', details: { plainSize: 2 ** 32 + 1, frameSize: 1 } });
    expect((error as Error).message).toMatch(/needs more frames than the format allows/);
    expect(() => createDecryptStream({ ...p, plainSize: 2 ** 32 })).not.toThrow();
    expect(() => createDecryptStream({ ...p, frameSize: 2, plainSize: 2 ** 33 })).not.toThrow();
  });
});

describe('what a corruption error tells the operators', () => {
  const SIZE = 3 * TINY + 5; // frames 0..3

  async function corruption(cipher: Buffer, p: FrameParams, chunker: Chunker = whole): Promise<StorageFileCorruptedError> {
    const run = await decrypt({ ...p, plainSize: SIZE }, cipher, chunker);
    expect(run.error).toBeInstanceOf(StorageFileCorruptedError);
    const error = run.error as StorageFileCorruptedError;
    expect(error.operation).toBe('decrypt');
    expect(error.fileId).toBe(p.fileId);
    return error;
  }

  it('names the frame that fails, and why', async () => {
    const p = params(TINY, 'report', 'file-report');
    const cipher = await encrypt(p, bytes(SIZE, 'report/plain'));
    const stride = TINY + TAG_LENGTH;

    const flippedFrame = await corruption(flipped(cipher, 2 * stride + 3), p);
    expect(flippedFrame.message).toMatch(/fails authentication/);
    expect(flippedFrame.details).toEqual({ frame: 2, plainSize: SIZE, frameSize: TINY });
    expect(flippedFrame.cause).toBeDefined();

    const appended = await corruption(Buffer.concat([cipher, Buffer.alloc(1)]), p, ones);
    expect(appended.message).toMatch(/runs on past its last frame/);
    expect(appended.details).toEqual({ frame: 4, plainSize: SIZE, frameSize: TINY });

    const cut = await corruption(cipher.subarray(0, stride + 5), p);
    expect(cut.message).toMatch(/ends before its last frame/);
    expect(cut.details).toEqual({ frame: 1, plainSize: SIZE, frameSize: TINY });
  });
});

describe('what a refused size, range or parameter tells the programmer', () => {
  // These are bugs of the caller, not of the file: the message names the value that is wrong.
  it('names the offending value', () => {
    expect(() => frameCount(10, 0)).toThrow('bad frame size 0');
    expect(() => cipherSize(-1, 16)).toThrow('bad plaintext size -1');
    expect(() => cipherRangeFor(5, 4, 40, TINY)).toThrow('bytes 5-4 are not a range of a 40-byte file');
    const good = params(TINY);
    expect(() => createEncryptStream({ ...good, dataKey: good.dataKey.subarray(0, 31) })).toThrow('the data key must be 32 bytes');
    expect(() => createEncryptStream({ ...good, noncePrefix: good.noncePrefix.subarray(0, 6) })).toThrow('the nonce prefix must be 7 bytes');
    const d = { ...good, plainSize: 40 }; // frames of 16, 16 and 8 bytes
    expect(() => createDecryptStream({ ...d, firstFrame: 3 })).toThrow('frames 3-2 are not frames of a 3-frame file');
    expect(() => createDecryptStream({ ...d, firstFrame: 2, skip: 8 })).toThrow('cannot skip 8 bytes of frame 2');
    expect(() => createDecryptStream({ ...d, skip: 1, length: 40 })).toThrow('cannot deliver 40 bytes after skipping 1 of frames 0-2');
  });
});

describe('what a metadata error tells the operators', () => {
  const encoded = encodeEncryptionMetadata({
    version: FORMAT_VERSION,
    kekId: 'k1',
    wrappedKey: bytes(WRAPPED_KEY_LENGTH, 'meta-report/wrapped'),
    noncePrefix: bytes(NONCE_PREFIX_LENGTH, 'meta-report/nonce'),
    frameSize: DEFAULT_FRAME_SIZE,
  });

  function metadataError(meta: Record<string, string | undefined>): StorageMetadataError {
    try {
      decodeEncryptionMetadata(meta, 'file-m');
    } catch (error) {
      expect(error).toBeInstanceOf(StorageMetadataError);
      expect((error as StorageMetadataError).operation).toBe('decrypt');
      return error as StorageMetadataError;
    }
    return expect.fail('decoded');
  }

  it.each(['enc-version', 'enc-kek', 'enc-key', 'enc-nonce', 'enc-frame'])('a missing or empty %s is named as missing', (field) => {
    // Empty is what some S3 tools leave of a value they dropped: it is missing, not unreadable.
    for (const value of [undefined, '']) {
      expect(metadataError({ ...encoded, [field]: value }).message).toBe(`The object's encryption metadata lacks ${field}`);
    }
  });

  it('names an unknown format version, which a newer writer may have used', () => {
    expect(metadataError({ ...encoded, 'enc-version': '2' }).message).toMatch(/unknown encryption format version 2$/);
  });

  it.each([
    ['enc-version', '1.0', 'The object has an unreadable encryption format version'],
    ['enc-kek', 'k/1', 'The object names an unreadable key-encryption key id'],
    ['enc-key', 'AAAA', 'The object has an unreadable wrapped data key'],
    ['enc-nonce', 'AAAA', 'The object has an unreadable nonce prefix'],
    ['enc-frame', '0', 'The object has an unreadable frame size'],
  ])('says which field is unreadable: %s', (field, value, message) => {
    const error = metadataError({ ...encoded, [field]: value });
    expect(error.message).toBe(message);
    expect(error.details).toEqual({ field });
  });
});
