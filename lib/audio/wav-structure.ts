import { ContainerWalker, InvalidAudio, fourCC, isFourCC, printable, type Next, type WalkerOptions } from './container-walker.ts';

/**
 * RIFF/WAVE as it streams. music-metadata reads the `fmt ` chunk and computes the duration from
 * the `data` chunk's size, but it does not hold the file to its sizes: it stops at the RIFF
 * size without looking at what follows, accepts a file that ends early, and ignores a `fmt `
 * whose block size contradicts its channels and bits. So this walker checks:
 *
 * - the RIFF size is the upload's size minus 8 (or minus 9: a writer that pads an odd last
 *   chunk but leaves the pad byte out of the RIFF size, which is common);
 * - the chunks tile the RIFF body exactly: each has a printable FourCC and ends inside it;
 *   nothing stray inside, nothing at all after it;
 * - exactly one `fmt `, with a codec that a transcription pipeline decodes, sane channels and
 *   sample rate, and (for PCM-like codecs) a block size and byte rate that agree with them;
 * - exactly one `data` chunk after it, holding whole samples (for PCM-like codecs; a partial
 *   last block is a file cut short or a size written wrong);
 * - the first samples are not another file: PCM is any bytes, so no structure can tell a
 *   recording from an ELF binary given a consistent header; these two cheap heuristics catch a
 *   header glued in front of another file, which is how such disguises are made.
 */

export interface WavFacts {
  codec: string;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
  blockAlign: number;
  byteRate: number;
  dataBytes: number;
}

/** Codecs accepted in a WAV (what ffmpeg and every speech engine decode), by format tag, named as music-metadata names them. */
const CODECS: Record<number, string> = {
  0x0001: 'PCM',
  0x0002: 'ADPCM',
  0x0003: 'IEEE_FLOAT',
  0x0006: 'ALAW',
  0x0007: 'MULAW',
  0x0011: 'DVI_ADPCM',
  0x0031: 'GSM610',
  0x0055: 'MPEGLAYER3',
};
/** Codecs whose block is exactly one sample per channel, so block size and byte rate follow from the rest. */
const LINEAR = new Set([0x0001, 0x0003, 0x0006, 0x0007]);
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
/** The KSDATAFORMAT_SUBTYPE GUID after its first two bytes (which carry the format tag). */
const SUBTYPE_GUID_TAIL = Buffer.from('000000001000800000aa00389b71', 'hex');

/** Bytes of samples looked at by the heuristics. */
const SAMPLE_PROBE = 4096;
/** Starts of files that are not sound (executables, archives, documents). */
const FOREIGN_SIGNATURES: readonly [string, Buffer][] = [
  ['an ELF executable', Buffer.from('\x7fELF', 'latin1')],
  ['a Windows executable', Buffer.from('MZ\x90\x00', 'latin1')],
  ['a Mach-O executable', Buffer.from('cffaedfe', 'hex')],
  ['a Mach-O executable', Buffer.from('cafebabe', 'hex')],
  ['a WebAssembly module', Buffer.from('\x00asm', 'latin1')],
  ['a PDF document', Buffer.from('%PDF', 'latin1')],
  ['a ZIP archive', Buffer.from('PK\x03\x04', 'latin1')],
  ['a gzip archive', Buffer.from('1f8b08', 'hex')],
  ['a RAR archive', Buffer.from('Rar!', 'latin1')],
  ['a 7-Zip archive', Buffer.from('377abcaf', 'hex')],
];
/** Below this many bytes of samples, "all printable" happens to noise by chance. */
const MIN_TEXT_PROBE = 64;

type State = 'riff' | 'chunk' | 'fmt' | 'samples';

export class WavStructure extends ContainerWalker<WavFacts> {
  #state: State = 'riff';
  #riffEnd = 0;
  #fmt: (Omit<WavFacts, 'dataBytes'> & { tag: number }) | undefined;
  #dataBytes: number | undefined;
  /** Where the last chunk ends, without and with its pad byte. */
  #lastEnd = 0;
  #lastOdd = false;

  constructor(options: WalkerOptions = {}) {
    super(12, options);
  }

  protected visit(b: Buffer, o: number, at: number, want: number): Next {
    switch (this.#state) {
      case 'riff': {
        if (fourCC(b, o) !== 'RIFF' || fourCC(b, o + 8) !== 'WAVE') throw new InvalidAudio('not a RIFF/WAVE file');
        this.#riffEnd = 8 + b.readUInt32LE(o + 4);
        const expected = this.expectedSize;
        if (expected !== undefined && this.#riffEnd !== expected && this.#riffEnd !== expected - 1) throw this.#sizeMismatch(expected);
        return this.#chunkAt(12);
      }
      case 'chunk':
        return this.#chunk(b, o, at);
      case 'fmt':
        this.#format(b, o, want);
        this.#state = 'chunk';
        return this.#chunkAt(this.#lastEnd + (this.#lastOdd ? 1 : 0));
      case 'samples':
        this.#probeSamples(b.subarray(o, o + want));
        this.#state = 'chunk';
        return this.#chunkAt(this.#lastEnd + (this.#lastOdd ? 1 : 0));
    }
  }

  #chunk(b: Buffer, o: number, at: number): Next {
    const id = fourCC(b, o);
    const size = b.readUInt32LE(o + 4);
    if (!isFourCC(b, o)) throw new InvalidAudio(`bytes at offset ${at} are not a RIFF chunk`);
    const end = at + 8 + size;
    if (end > this.#riffEnd) {
      throw new InvalidAudio(`chunk "${printable(id)}" (${size} bytes at offset ${at}) runs past the end of the RIFF chunk (${this.#riffEnd} bytes)`);
    }
    this.#lastEnd = end;
    this.#lastOdd = size % 2 === 1;
    const next = end + (this.#lastOdd ? 1 : 0);
    if (id === 'fmt ') {
      if (this.#fmt !== undefined) throw new InvalidAudio('two fmt chunks');
      if (size < 16) throw new InvalidAudio(`fmt chunk of ${size} bytes (at least 16 are needed)`);
      this.#state = 'fmt';
      return { at: at + 8, want: Math.min(size, 40) };
    }
    if (id === 'data') {
      if (this.#fmt === undefined) throw new InvalidAudio('data chunk before the fmt chunk');
      if (this.#dataBytes !== undefined) throw new InvalidAudio('two data chunks');
      this.#dataBytes = size;
      if (size > 0) {
        this.#state = 'samples';
        return { at: at + 8, want: Math.min(size, SAMPLE_PROBE) };
      }
    }
    return this.#chunkAt(next);
  }

  #chunkAt(at: number): Next {
    if (at >= this.#riffEnd) return 'done';
    if (this.#riffEnd - at < 8) throw new InvalidAudio(`${this.#riffEnd - at} stray bytes at the end of the RIFF chunk`);
    this.#state = 'chunk';
    return { at, want: 8 };
  }

  #format(b: Buffer, o: number, length: number): void {
    let tag = b.readUInt16LE(o);
    const channels = b.readUInt16LE(o + 2);
    const sampleRate = b.readUInt32LE(o + 4);
    const byteRate = b.readUInt32LE(o + 8);
    const blockAlign = b.readUInt16LE(o + 12);
    const bitsPerSample = b.readUInt16LE(o + 14);
    if (tag === WAVE_FORMAT_EXTENSIBLE) {
      // WAVE_FORMAT_EXTENSIBLE (ffmpeg writes it for more than two channels or 24-bit PCM) names
      // its codec in a GUID; music-metadata reports it as "non-PCM (65534)".
      if (length < 40 || !b.subarray(o + 26, o + 40).equals(SUBTYPE_GUID_TAIL)) throw new InvalidAudio('WAVE_FORMAT_EXTENSIBLE without a known sub-format');
      tag = b.readUInt16LE(o + 24);
    }
    const codec = CODECS[tag];
    if (codec === undefined) throw new InvalidAudio(`WAV codec 0x${tag.toString(16).padStart(4, '0')} is not supported`);
    if (channels < 1 || channels > 32) throw new InvalidAudio(`WAV with ${channels} channels`);
    if (sampleRate < 1000 || sampleRate > 768_000) throw new InvalidAudio(`WAV sample rate of ${sampleRate} Hz`);
    if (blockAlign < 1) throw new InvalidAudio('WAV block size of 0');
    if (LINEAR.has(tag)) {
      if (bitsPerSample < 8 || bitsPerSample > 64 || bitsPerSample % 8 !== 0) throw new InvalidAudio(`${codec} WAV with ${bitsPerSample} bits per sample`);
      if (blockAlign !== (channels * bitsPerSample) / 8 || byteRate !== sampleRate * blockAlign) {
        throw new InvalidAudio(
          `fmt chunk contradicts itself: ${channels} channels of ${bitsPerSample} bits at ${sampleRate} Hz, but blocks of ${blockAlign} bytes at ${byteRate} bytes/s`,
        );
      }
    }
    this.#fmt = { tag, codec, channels, sampleRate, bitsPerSample, blockAlign, byteRate };
  }

  #probeSamples(samples: Buffer): void {
    for (const [what, signature] of FOREIGN_SIGNATURES) {
      if (samples.length >= signature.length && samples.subarray(0, signature.length).equals(signature)) {
        throw new InvalidAudio(`the audio samples start like ${what}, not sound`);
      }
    }
    if (samples.length >= MIN_TEXT_PROBE && isText(samples)) throw new InvalidAudio('the audio samples are text (a web page, a script?), not sound');
  }

  protected conclude(total: number, pending: { at: number } | undefined): WavFacts {
    if (total < 12) throw new InvalidAudio('not a RIFF/WAVE file');
    if (pending !== undefined && pending.at < this.#riffEnd) throw this.#sizeMismatch(total);
    // The last chunk's pad byte may be counted in the RIFF size, left out of it, or missing.
    const padOutside = this.#lastOdd && this.#lastEnd === this.#riffEnd;
    if (total !== this.#riffEnd && !(padOutside && total === this.#riffEnd + 1)) {
      throw this.#sizeMismatch(total);
    }
    if (this.#fmt === undefined) throw new InvalidAudio('no fmt chunk');
    if (this.#dataBytes === undefined) throw new InvalidAudio('no data chunk');
    if (this.#dataBytes === 0) throw new InvalidAudio('the data chunk holds no samples');
    if (LINEAR.has(this.#fmt.tag) && this.#dataBytes % this.#fmt.blockAlign !== 0) {
      throw new InvalidAudio(`the data chunk (${this.#dataBytes} bytes) ends inside a sample (blocks of ${this.#fmt.blockAlign} bytes)`);
    }
    const { tag: _tag, ...fmt } = this.#fmt;
    return { ...fmt, dataBytes: this.#dataBytes };
  }

  #sizeMismatch(total: number): InvalidAudio {
    const what = total > this.#riffEnd ? `${total - this.#riffEnd} bytes follow the end of the RIFF chunk` : 'it ends early';
    return new InvalidAudio(`the RIFF header says the file has ${this.#riffEnd} bytes, but the upload has ${total}: ${what}`);
  }
}

/** Every byte is printable ASCII or common whitespace: what HTML, scripts and other text are made of. */
function isText(bytes: Buffer): boolean {
  for (const c of bytes) {
    if ((c < 0x20 || c > 0x7e) && c !== 0x09 && c !== 0x0a && c !== 0x0d) return false;
  }
  return true;
}
