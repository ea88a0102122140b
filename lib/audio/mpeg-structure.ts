import { ContainerWalker, InvalidAudio, type Next, type WalkerOptions } from './container-walker.ts';

/**
 * MPEG audio (MP3) as it streams. music-metadata reads the first frames for the codec, sample
 * rate and channels, then stops (it estimates a CBR file's duration from its size, and takes a
 * VBR file's from its Xing header); where it does read on, it re-synchronises over anything
 * that is not a frame. So it would take an ELF binary or an HTML page after one good frame for
 * an MP3. This walker follows the frames themselves, header to header, through the whole upload:
 *
 * - optional ID3v2 tags first (their size is in their header), then, as taggers sometimes leave
 *   it, a run of zero bytes (zeros carry nothing, so they are tolerated, up to 64 KiB);
 * - then MPEG frames back to back, each header valid (no free-format bitrate, no reserved
 *   values) and of the same MPEG version, layer, sample rate and mono/stereo as the first:
 *   a change means two streams spliced together or a header that only looks like one;
 * - at the end only tags: an APEv2 tag and/or an ID3v1 tag, exactly filling what is left.
 *   No other junk is allowed between or after frames: real encoders write none, and junk is
 *   where a second file would hide. The one exception is a last frame cut short (a recording
 *   stopped mid-frame): at most one frame's bytes, never counted as audio;
 * - the duration is counted from the frames present (not taken from a header that could say
 *   anything), without the Xing/Info/VBRI frame that describes the stream and holds no sound.
 */

export interface MpegFacts {
  /** As music-metadata names it, e.g. "MPEG 1 Layer 3". */
  codec: string;
  sampleRate: number;
  channels: number;
  /** Frames holding audio (the Xing/Info/VBRI frame and a cut-short last frame excluded). */
  frames: number;
  durationSeconds: number;
  /** Average bits per second of the audio frames. */
  bitrate: number;
}

const BITRATES_KBPS: Record<string, readonly number[]> = {
  '1-1': [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
  '1-2': [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
  '1-3': [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  '2-1': [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
  '2-2': [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  '2-3': [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
};
const SAMPLE_RATES: Record<number, readonly number[]> = { 1: [44100, 48000, 32000], 2: [22050, 24000, 16000], 2.5: [11025, 12000, 8000] };
const MAX_ZERO_GAP = 64 * 1024;
/** What the end of the file must hold for the tags: an ID3v1 tag (128) and an APEv2 footer (32). */
const TAIL_BYTES = 160;
/** Bytes looked at where the frames stop. */
const TRAILER_PROBE = 40;

interface FrameHeader {
  version: 1 | 2 | 2.5;
  layer: 1 | 2 | 3;
  sampleRate: number;
  mono: boolean;
  length: number;
  samples: number;
}

/**
 * Valid headers already parsed, by their last three bytes: a stream repeats a handful of them, so
 * each frame costs one lookup. At most ~12 000 valid combinations exist, so the cache stays small.
 */
const HEADERS = new Map<number, FrameHeader>();

/** The frame header at `o`, or why it is not one. */
function frameHeader(b: Buffer, o: number): FrameHeader | string {
  if (b[o] !== 0xff) return 'no frame sync';
  const key = (b[o + 1]! << 16) | (b[o + 2]! << 8) | (b[o + 3]! & 0xc0);
  const known = HEADERS.get(key);
  if (known !== undefined) return known;
  const header = parseFrameHeader(b[o + 1]!, b[o + 2]!, b[o + 3]!);
  if (typeof header !== 'string') HEADERS.set(key, header);
  return header;
}

function parseFrameHeader(b1: number, b2: number, b3: number): FrameHeader | string {
  if ((b1 & 0xe0) !== 0xe0) return 'no frame sync';
  const versionBits = (b1 >> 3) & 3;
  const layerBits = (b1 >> 1) & 3;
  if (versionBits === 1) return 'reserved MPEG version';
  if (layerBits === 0) return 'reserved layer';
  const version = versionBits === 3 ? 1 : versionBits === 2 ? 2 : 2.5;
  const layer = (4 - layerBits) as 1 | 2 | 3;
  const bitrateIndex = b2 >> 4;
  const rateIndex = (b2 >> 2) & 3;
  if (bitrateIndex === 0) return 'free-format bitrate (not supported)';
  if (bitrateIndex === 15) return 'invalid bitrate';
  if (rateIndex === 3) return 'reserved sample rate';
  const bitrate = BITRATES_KBPS[`${version === 1 ? 1 : 2}-${layer}`]![bitrateIndex]! * 1000;
  const sampleRate = SAMPLE_RATES[version]![rateIndex]!;
  const padding = (b2 >> 1) & 1;
  const length =
    layer === 1
      ? (Math.floor((12 * bitrate) / sampleRate) + padding) * 4
      : Math.floor(((layer === 3 && version !== 1 ? 72 : 144) * bitrate) / sampleRate) + padding;
  const samples = layer === 1 ? 384 : layer === 3 && version !== 1 ? 576 : 1152;
  return { version, layer, sampleRate, mono: b3 >> 6 === 3, length, samples };
}

type State = 'tag' | 'frame' | 'info' | 'trailer';

export class MpegStructure extends ContainerWalker<MpegFacts> {
  #state: State = 'tag';
  #first: FrameHeader | undefined;
  #frames = 0;
  #audioBytes = 0;
  #zeros = 0;
  /** The frame last counted: uncounted if the upload ends inside it. */
  #last: { at: number; length: number } | undefined;
  /** Where the frames stopped, and why, when something other than a frame followed them. */
  #stop: { at: number; why: string } | undefined;
  #tail = Buffer.alloc(0);

  constructor(options: WalkerOptions = {}) {
    super(10, options);
  }

  override update(chunk: Buffer): void {
    super.update(chunk);
    this.#tail =
      chunk.length >= TAIL_BYTES
        ? Buffer.from(chunk.subarray(chunk.length - TAIL_BYTES))
        : Buffer.concat([this.#tail, chunk]).subarray(-TAIL_BYTES);
  }

  protected visit(b: Buffer, o: number, at: number, want: number): Next {
    if (this.#state === 'info') return this.#info(b, o, at, want);
    if (this.#state === 'trailer') return this.#trailer(b, o, at);
    if (this.#state === 'tag' && b.toString('latin1', o, o + 3) === 'ID3') return this.#id3v2(b, o, at);
    this.#state = 'frame';
    if (this.#first === undefined && b[o] === 0) {
      let zeros = 1;
      while (zeros < 4 && b[o + zeros] === 0) zeros++;
      this.#zeros += zeros;
      if (this.#zeros > MAX_ZERO_GAP) return this.#stopAt(at, `more than ${MAX_ZERO_GAP} zero bytes before the first frame`);
      return { at: at + zeros, want: 4 };
    }
    const header = frameHeader(b, o);
    if (typeof header === 'string') return this.#stopAt(at, header);
    const first = this.#first;
    if (first === undefined) {
      this.#first = header;
      if (header.layer === 3) {
        // The first frame may be a Xing/Info (LAME) or VBRI header frame: look at where those put their tag.
        const sideInfo = header.version === 1 ? (header.mono ? 17 : 32) : header.mono ? 9 : 17;
        const want = Math.min(header.length, Math.max(4 + sideInfo + 4, 4 + 32 + 4));
        this.#state = 'info';
        return { at, want };
      }
    } else if (header.version !== first.version || header.layer !== first.layer || header.sampleRate !== first.sampleRate || header.mono !== first.mono) {
      return this.#stopAt(at, `the stream changes from ${describe(first)} to ${describe(header)}`);
    }
    this.#count(at, header);
    return { at: at + header.length, want: 4 };
  }

  #info(b: Buffer, o: number, at: number, want: number): Next {
    const header = this.#first!;
    const sideInfo = header.version === 1 ? (header.mono ? 17 : 32) : header.mono ? 9 : 17;
    const tag = want >= 8 + sideInfo ? b.toString('latin1', o + 4 + sideInfo, o + 8 + sideInfo) : '';
    const isInfoFrame = tag === 'Xing' || tag === 'Info' || (want >= 40 && b.toString('latin1', o + 36, o + 40) === 'VBRI');
    if (!isInfoFrame) this.#count(at, header);
    this.#state = 'frame';
    return { at: at + header.length, want: 4 };
  }

  #count(at: number, header: FrameHeader): void {
    this.#frames++;
    this.#audioBytes += header.length;
    this.#last = { at, length: header.length };
  }

  #id3v2(b: Buffer, o: number, at: number): Next {
    const major = b[o + 3]!;
    const flags = b[o + 5]!;
    const sizeBytes = [b[o + 6]!, b[o + 7]!, b[o + 8]!, b[o + 9]!];
    if (major < 2 || major > 4 || b[o + 4] === 0xff || sizeBytes.some((x) => x >= 0x80)) throw new InvalidAudio(`broken ID3v2 tag at offset ${at}`);
    const size = sizeBytes.reduce((n, x) => n * 128 + x, 0);
    const footer = major === 4 && (flags & 0x10) !== 0 ? 10 : 0;
    return { at: at + 10 + size + footer, want: 10 };
  }

  #stopAt(at: number, why: string): Next {
    this.#stop = { at, why };
    if (this.#first === undefined) return 'done';
    // Only tags may follow the frames; the end of the file says which (conclude), but most junk
    // shows at once: look at its first bytes now, rather than encrypt the rest of it for nothing.
    this.#state = 'trailer';
    return { at, want: TRAILER_PROBE };
  }

  /** The first bytes after the frames: they must begin an ID3v1 tag, an APEv2 tag with its header, or an APEv2 tag's first item. */
  #trailer(b: Buffer, o: number, at: number): Next {
    const rest = this.expectedSize === undefined ? undefined : this.expectedSize - at;
    const refuse = (why: string) => {
      throw new InvalidAudio(`${rest === undefined ? 'the' : rest} bytes at offset ${at} are not MPEG audio frames (${this.#stop!.why}; ${why})`);
    };
    if (b.toString('latin1', o, o + 3) === 'TAG') {
      if (rest !== undefined && rest !== 128) refuse('not an ID3v1 tag, which is 128 bytes and last');
    } else if (b.toString('latin1', o, o + 8) === 'APETAGEX') {
      const size = b.readUInt32LE(o + 12);
      if (rest !== undefined && rest !== 32 + size && rest !== 32 + size + 128) refuse('an APEv2 tag of another size');
    } else {
      // An APEv2 tag without a header starts with its first item: value length, flags (bits 0–2 only), an ASCII key.
      const length = b.readUInt32LE(o);
      const flags = b.readUInt32LE(o + 4);
      const key = b.subarray(o + 8, o + TRAILER_PROBE);
      const end = key.indexOf(0);
      const printableKey = (end < 0 ? key : key.subarray(0, end)).every((c) => c >= 0x20 && c <= 0x7e);
      if ((flags & ~7) !== 0 || end === 0 || end === 1 || !printableKey || (rest !== undefined && length > rest)) refuse('not a tag either');
    }
    return 'done';
  }

  protected conclude(total: number, pending: { at: number } | undefined): MpegFacts {
    const first = this.#first;
    if (first === undefined) {
      if (pending !== undefined && pending.at > total) throw new InvalidAudio('the ID3v2 tag runs past the end of the upload; no MPEG audio frames');
      throw new InvalidAudio(this.#stop ? `no MPEG audio frame where the first should start (offset ${this.#stop.at}: ${this.#stop.why})` : 'no MPEG audio frames');
    }
    if (this.#stop !== undefined) {
      const tagsStart = this.#tagsStart(total);
      if (tagsStart !== this.#stop.at) {
        throw new InvalidAudio(`${total - this.#stop.at} bytes at offset ${this.#stop.at} are not MPEG audio frames (${this.#stop.why})`);
      }
    } else if (pending !== undefined && pending.at > total && this.#last !== undefined && this.#last.at + this.#last.length === pending.at) {
      // The upload ends inside its last frame: a recording cut short. That frame holds no whole sound.
      this.#frames--;
      this.#audioBytes -= this.#last.length;
    }
    // (Ending 1–3 bytes into a next frame's header, pending.at < total, is the same cut, a few bytes earlier.)
    if (this.#frames < 1) throw new InvalidAudio('no complete MPEG audio frame');
    const durationSeconds = (this.#frames * first.samples) / first.sampleRate;
    return {
      codec: describeCodec(first),
      sampleRate: first.sampleRate,
      channels: first.mono ? 1 : 2,
      frames: this.#frames,
      durationSeconds,
      bitrate: Math.round((this.#audioBytes * 8) / durationSeconds),
    };
  }

  /** Where the trailing tags (APEv2, then ID3v1) start, counting back from the end. */
  #tagsStart(total: number): number {
    const tail = this.#tail;
    let end = tail.length;
    if (end >= 128 && total - 128 >= this.#stop!.at && tail.toString('latin1', end - 128, end - 125) === 'TAG') end -= 128;
    if (end >= 32 && tail.toString('latin1', end - 32, end - 24) === 'APETAGEX') {
      const size = tail.readUInt32LE(end - 20);
      const hasHeader = (tail.readUInt32LE(end - 12) & 0x80000000) !== 0;
      return total - (tail.length - end) - size - (hasHeader ? 32 : 0);
    }
    return total - (tail.length - end);
  }
}

function describeCodec(h: FrameHeader): string {
  return `MPEG ${h.version} Layer ${h.layer}`;
}

function describe(h: FrameHeader): string {
  return `${describeCodec(h)} ${h.sampleRate} Hz ${h.mono ? 'mono' : 'stereo'}`;
}
