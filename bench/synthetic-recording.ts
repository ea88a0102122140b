import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

/**
 * A WAV-like recording of any size that is never held in memory: a real header, then one random
 * 1 MiB block repeated (MinIO does not compress, so the block's randomness is what it stores).
 * Any byte range of it can be streamed or rebuilt, so the bench uploads 1 GB without a 1 GB
 * buffer and checks what a read returns against what was sent.
 */
export class SyntheticRecording {
  static readonly HEADER_BYTES = 44;
  readonly size: number;
  readonly #header: Buffer;
  readonly #block: Buffer;

  constructor(size: number, block: Buffer = randomBytes(1024 * 1024)) {
    if (size < SyntheticRecording.HEADER_BYTES) throw new Error('a WAV needs at least 44 bytes');
    this.size = size;
    this.#block = block;
    this.#header = Buffer.alloc(SyntheticRecording.HEADER_BYTES);
    this.#header.write('RIFF', 0, 'ascii');
    this.#header.writeUInt32LE(Math.min(size - 8, 0xffffffff), 4);
    // A consistent PCM header (processing parses every upload whole): 16-bit mono at 16 kHz, or
    // 8-bit when the size leaves an odd number of sample bytes, so the samples are always whole.
    const bytesPerSample = (size - SyntheticRecording.HEADER_BYTES) % 2 === 0 ? 2 : 1;
    this.#header.write('WAVEfmt ', 8, 'ascii');
    this.#header.writeUInt32LE(16, 16);
    this.#header.writeUInt16LE(1, 20);
    this.#header.writeUInt16LE(1, 22);
    this.#header.writeUInt32LE(16000, 24);
    this.#header.writeUInt32LE(16000 * bytesPerSample, 28);
    this.#header.writeUInt16LE(bytesPerSample, 32);
    this.#header.writeUInt16LE(8 * bytesPerSample, 34);
    this.#header.write('data', 36, 'ascii');
    this.#header.writeUInt32LE(Math.min(size - SyntheticRecording.HEADER_BYTES, 0xffffffff), 40);
  }

  /** The bytes of [start, end) as views of the header and the block: nothing is copied. */
  *chunks(start = 0, end = this.size): Generator<Buffer> {
    const h = SyntheticRecording.HEADER_BYTES;
    if (start < h) yield this.#header.subarray(start, Math.min(h, end));
    for (let at = Math.max(start, h); at < end; ) {
      const offset = (at - h) % this.#block.length;
      const chunk = this.#block.subarray(offset, Math.min(this.#block.length, offset + end - at));
      at += chunk.length;
      yield chunk;
    }
  }

  /** A Node stream of [start, end), for the SDK and the library. */
  stream(start = 0, end = this.size): Readable {
    return Readable.from(this.chunks(start, end));
  }

  /** A fetch request body of [start, end) with its length, streamed: `fetch(url, { method: 'PUT', ...body })`. */
  body(start = 0, end = this.size): RequestInit {
    return { body: ReadableStream.from(this.chunks(start, end)), headers: { 'content-length': String(end - start) }, duplex: 'half' } as RequestInit;
  }

  /** The bytes of [start, end), copied into one buffer: for checking reads, so keep it small. */
  bytes(start: number, end: number): Buffer {
    return Buffer.concat([...this.chunks(start, end)]);
  }

  sha256(): string {
    const hash = createHash('sha256');
    for (const chunk of this.chunks()) hash.update(chunk);
    return hash.digest('hex');
  }
}
