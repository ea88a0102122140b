/**
 * The structural half of the audio check: a walker follows a container's own layout (RIFF
 * chunks, MPEG frames, MP4 boxes) through the upload as it streams, seeing only the few header
 * bytes of each unit and jumping over the payloads. It never holds more than one header's worth
 * of bytes (a few KiB at most), so its cost is per unit, not per megabyte: a 100 MB WAV is a
 * handful of chunk headers, a 100 MB MP3 about 250 000 frame headers of 4 bytes.
 *
 * music-metadata (lib/processing/audio-check.ts) reads the same bytes for what it knows well
 * (codec, sample rate, channels, duration); the walkers check what it does not: that the
 * container's sizes account for every byte received, and nothing else is inside or after it.
 */

/** The content is not a consistent file of its declared format; the message says why, to a person. */
export class InvalidAudio extends Error {
  override name = 'InvalidAudio';
}

/** What the walker wants next: `want` bytes at absolute offset `at`, or nothing more (`done`). */
export type Next = { at: number; want: number } | 'done';

export interface WalkerOptions {
  /** The upload's size when known in advance (the manifest's), so sizes can be checked before the end. */
  expectedSize?: number | undefined;
}

export abstract class ContainerWalker<Facts> {
  protected readonly expectedSize: number | undefined;
  /** Bytes seen so far. */
  #position = 0;
  #at = 0;
  #want: number;
  #done = false;
  /** Header bytes collected across chunk boundaries (rare: most headers lie inside one chunk). */
  #parts: Buffer[] = [];
  #partsLength = 0;

  constructor(firstWant: number, options: WalkerOptions = {}) {
    this.#want = firstWant;
    this.expectedSize = options.expectedSize;
  }

  /** Bytes seen so far. */
  get position(): number {
    return this.#position;
  }

  /**
   * Called with `want` bytes found at absolute offset `at` (they are `bytes[offset, offset + want)`;
   * `bytes` is borrowed: copy what must outlive the call). Returns where to look next, which is
   * never before `at` (at `at` itself only to ask for more bytes there). Throws InvalidAudio.
   */
  protected abstract visit(bytes: Buffer, offset: number, at: number, want: number): Next;

  /**
   * After the last byte: the verdict on the whole, given what the walker was still waiting for
   * (`pending`: the offset it wanted bytes at and how many of them arrived; undefined once done).
   */
  protected abstract conclude(total: number, pending: { at: number; want: number; received: number } | undefined): Facts;

  update(chunk: Buffer): void {
    const base = this.#position;
    this.#position += chunk.length;
    while (!this.#done) {
      const offset = this.#at + this.#partsLength - base;
      if (offset >= chunk.length) return;
      if (offset < 0) throw new Error('container walker went backwards');
      let bytes: Buffer;
      let start: number;
      const missing = this.#want - this.#partsLength;
      if (this.#partsLength === 0 && offset + missing <= chunk.length) {
        bytes = chunk;
        start = offset;
      } else {
        const take = Math.min(missing, chunk.length - offset);
        this.#parts.push(chunk.subarray(offset, offset + take));
        this.#partsLength += take;
        if (this.#partsLength < this.#want) return;
        bytes = Buffer.concat(this.#parts, this.#partsLength);
        start = 0;
        this.#parts = [];
        this.#partsLength = 0;
      }
      const next = this.visit(bytes, start, this.#at, this.#want);
      if (next === 'done') {
        this.#done = true;
        return;
      }
      if (next.at < this.#at || next.want < 1) throw new Error('container walker asked for nothing or went backwards');
      if (next.at === this.#at) {
        // More bytes at the same place (a 64-bit box size, a frame's Xing tag): keep those already seen.
        if (next.want <= this.#want) throw new Error('container walker asked for the same bytes again');
        this.#parts = [Buffer.from(bytes.subarray(start, start + this.#want))];
        this.#partsLength = this.#want;
      }
      this.#at = next.at;
      this.#want = next.want;
    }
  }

  finish(): Facts {
    const pending = this.#done ? undefined : { at: this.#at, want: this.#want, received: this.#partsLength };
    return this.conclude(this.#position, pending);
  }
}

/** Four bytes that can name a chunk or a box: printable ASCII (spaces included, as in `fmt `). */
export function isFourCC(bytes: Buffer, offset: number): boolean {
  for (let i = offset; i < offset + 4; i++) {
    const c = bytes[i]!;
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

export function fourCC(bytes: Buffer, offset: number): string {
  return bytes.toString('latin1', offset, offset + 4);
}

/** A FourCC as a person can read it in a reason, whatever its bytes. */
export function printable(name: string): string {
  return JSON.stringify(name).slice(1, -1);
}
