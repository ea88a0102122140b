import { ContainerWalker, InvalidAudio, fourCC, isFourCC, printable, type Next, type WalkerOptions } from './container-walker.ts';

/**
 * MP4/M4A (ISO base media file format) as it streams. music-metadata parses the boxes it knows
 * (tracks, handlers, sample tables, durations) and refuses a box that overruns the file, but it
 * does not ask what kind of file the brands announce (an HEIF image is an ISO BMFF file too), it
 * ignores the top-level boxes it does not know, and it reports an AAC track's channel count from
 * the sample entry, where ISO 14496-12 makes it a fixed template value (2): the real count is in
 * the decoder configuration (esds). So this walker checks and reads:
 *
 * - the file starts with `ftyp`, whose major or a compatible brand is an audio-capable MP4
 *   brand, and no brand is an image one (`ftypheic` passing as m4a is an image);
 * - the top-level boxes tile the upload exactly, each with a printable type, none past the end
 *   (so nothing follows the last box, and a truncated file is refused);
 * - one `moov` of bounded size (music-metadata buffers its tables; 16 MiB describes days of
 *   audio) and at least one non-empty `mdat`;
 * - inside `moov`, each track's handler (`hdlr`) and first sample entry (`stsd`), and for AAC
 *   the channel configuration of its AudioSpecificConfig.
 *
 * It descends only into the boxes on the path to those (moov/trak/mdia/minf/stbl): everything
 * else, the media data above all, is jumped over.
 */

export interface Mp4Track {
  /** `soun` for audio, `vide` for video... */
  handler: string | undefined;
  /** The first sample entry's type: `mp4a`, `alac`, `.mp3`... */
  format: string | undefined;
  /** From the decoder configuration when it says (AAC), else undefined. */
  channels: number | undefined;
}

export interface Mp4Facts {
  majorBrand: string;
  brands: string[];
  tracks: Mp4Track[];
  /** Payload bytes of all `mdat` boxes. */
  mediaBytes: number;
}

/** Brands an audio MP4 carries (Apple's M4A/M4B, the ISO and MP4 families, 3GPP, DASH, QuickTime). */
const AUDIO_BRANDS = new Set([
  'M4A ', 'M4B ', 'M4P ', 'F4A ', 'F4B ', 'mp41', 'mp42', 'mp71', 'isom', 'iso2', 'iso3', 'iso4', 'iso5', 'iso6', 'iso8', 'iso9',
  '3gp4', '3gp5', '3gp6', '3gp7', '3gp8', '3gp9', '3g2a', '3g2b', '3g2c', 'dash', 'qt  ', 'MSNV', 'caqv',
]);
/** Brands of still images and image sequences (HEIF/HEIC, AVIF, MIAF, JPEG in ISO BMFF). */
const IMAGE_BRANDS = new Set([
  'mif1', 'mif2', 'msf1', 'miaf', 'heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'hevm', 'hevs', 'avif', 'avis', 'avio',
  'MiHE', 'MiHA', 'MiHB', 'MiPr', 'MiAC', 'MiCm', 'jpeg', 'jpgs', 'avci', 'crx ',
]);
const MAX_FTYP = 1024;
const MAX_MOOV = 16 * 1024 * 1024;
const MAX_STSD = 64 * 1024;
/** Boxes descended into, by parent: the path to each track's handler and sample description. */
const DESCEND: Record<string, string> = { moov: '', trak: 'moov', mdia: 'trak', minf: 'mdia', stbl: 'minf' };
/** AAC channel configurations 1–7 (ISO 14496-3 table 1.19); 0 means "in the program config element". */
const AAC_CHANNELS = [undefined, 1, 2, 3, 4, 5, 6, 8];

type State = 'box' | 'ftyp' | 'hdlr' | 'stsd';

interface Open {
  type: string;
  end: number;
}

export class Mp4Structure extends ContainerWalker<Mp4Facts> {
  #state: State = 'box';
  #open: Open[] = [];
  #brands: { major: string; all: string[] } | undefined;
  #moovs = 0;
  #mdats = 0;
  #mediaBytes = 0;
  #tracks: Mp4Track[] = [];
  #track: Mp4Track | undefined;
  /** The last top-level box: named when the upload ends inside it. */
  #last: { type: string; at: number; end: number } | undefined;
  #next = 0;

  constructor(options: WalkerOptions = {}) {
    super(8, options);
  }

  protected visit(b: Buffer, o: number, at: number, want: number): Next {
    switch (this.#state) {
      case 'box':
        return this.#box(b, o, at, want);
      case 'ftyp':
        this.#ftyp(b, o, want);
        break;
      case 'hdlr':
        if (this.#track) this.#track.handler = fourCC(b, o + 8);
        break;
      case 'stsd':
        if (this.#track) Object.assign(this.#track, sampleEntry(b.subarray(o, o + want)));
        break;
    }
    this.#state = 'box';
    return this.#boxAt(this.#next);
  }

  #box(b: Buffer, o: number, at: number, want: number): Next {
    const size32 = b.readUInt32BE(o);
    const type = fourCC(b, o + 4);
    if (!isFourCC(b, o + 4)) throw new InvalidAudio(`bytes at offset ${at} are not an MP4 box`);
    if (size32 === 1 && want < 16) return { at, want: 16 };
    const parent = this.#open.at(-1);
    const limit = parent?.end ?? this.expectedSize ?? Infinity;
    const headerLength = size32 === 1 ? 16 : 8;
    let size: number;
    if (size32 === 1) {
      const large = b.readBigUInt64BE(o + 8);
      if (large > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidAudio(`box "${printable(type)}" at offset ${at} has an impossible size`);
      size = Number(large);
    } else if (size32 === 0) {
      // "To the end of the file": only a top-level box may say so, and only when that end is known.
      if (parent !== undefined || limit === Infinity) throw new InvalidAudio(`box "${printable(type)}" at offset ${at} has no size`);
      size = limit - at;
    } else {
      size = size32;
    }
    if (size < headerLength) throw new InvalidAudio(`box "${printable(type)}" at offset ${at} has an impossible size (${size})`);
    const end = at + size;
    if (end > limit) {
      throw new InvalidAudio(
        `box "${printable(type)}" (${size} bytes at offset ${at}) runs past the end of ${parent ? `its "${parent.type}" box` : `the upload (${limit} bytes)`}`,
      );
    }
    const payload = at + headerLength;
    const payloadLength = size - headerLength;
    this.#next = end;
    if (parent === undefined) {
      this.#last = { type, at, end };
      if (at === 0 && type !== 'ftyp') throw new InvalidAudio('the file does not start with an ftyp box');
      if (type === 'ftyp' && at === 0) {
        if (payloadLength < 8 || payloadLength > MAX_FTYP || payloadLength % 4 !== 0) throw new InvalidAudio(`ftyp box of ${size} bytes`);
        this.#state = 'ftyp';
        return { at: payload, want: payloadLength };
      }
      if (type === 'moov') {
        if (++this.#moovs > 1) throw new InvalidAudio('two moov boxes');
        if (size > MAX_MOOV) throw new InvalidAudio(`moov box of ${size} bytes (more than ${MAX_MOOV} describes no audio file)`);
      }
      if (type === 'mdat') {
        this.#mdats++;
        this.#mediaBytes += payloadLength;
      }
    }
    if (DESCEND[type] === (parent?.type ?? '')) {
      this.#open.push({ type, end });
      if (type === 'trak') this.#track = { handler: undefined, format: undefined, channels: undefined };
      return this.#boxAt(payload);
    }
    if (parent?.type === 'mdia' && type === 'hdlr' && payloadLength >= 12) {
      this.#state = 'hdlr';
      return { at: payload, want: 12 };
    }
    if (parent?.type === 'stbl' && type === 'stsd') {
      if (payloadLength > MAX_STSD) throw new InvalidAudio(`sample description of ${size} bytes`);
      if (payloadLength >= 8) {
        this.#state = 'stsd';
        return { at: payload, want: payloadLength };
      }
    }
    return this.#boxAt(end);
  }

  /** The next box header at `at`, closing the boxes that end there. */
  #boxAt(at: number): Next {
    this.#closeUpTo(at);
    const parent = this.#open.at(-1);
    if (parent !== undefined && parent.end - at < 8) throw new InvalidAudio(`${parent.end - at} stray bytes at the end of the "${parent.type}" box`);
    if (parent === undefined && this.expectedSize !== undefined && at >= this.expectedSize) return 'done';
    return { at, want: 8 };
  }

  #closeUpTo(at: number): void {
    while (this.#open.length > 0 && this.#open.at(-1)!.end <= at) {
      const closed = this.#open.pop()!;
      if (closed.type === 'trak' && this.#track) {
        this.#tracks.push(this.#track);
        this.#track = undefined;
      }
    }
  }

  #ftyp(b: Buffer, o: number, length: number): void {
    const major = fourCC(b, o);
    const all = [major];
    for (let i = 8; i + 4 <= length; i += 4) all.push(fourCC(b, o + i));
    const image = all.find((brand) => IMAGE_BRANDS.has(brand));
    if (image !== undefined) throw new InvalidAudio(`the ftyp box announces an image (brand "${printable(image)}"), not audio`);
    if (!all.some((brand) => AUDIO_BRANDS.has(brand))) {
      throw new InvalidAudio(`the ftyp box announces no audio MP4 brand (major brand "${printable(major)}")`);
    }
    this.#brands = { major, all: [...new Set(all)] };
  }

  protected conclude(total: number, pending: { at: number } | undefined): Mp4Facts {
    if (pending !== undefined && pending.at > total && this.#last !== undefined) {
      throw new InvalidAudio(`box "${printable(this.#last.type)}" (${this.#last.end - this.#last.at} bytes at offset ${this.#last.at}) runs past the end of the upload (${total} bytes)`);
    }
    if (pending !== undefined && pending.at < total) throw new InvalidAudio(`the upload ends in the middle of a box (offset ${pending.at})`);
    this.#closeUpTo(total);
    if (this.#open.length > 0) throw new InvalidAudio(`the "${this.#open.at(-1)!.type}" box runs past the end of the upload`);
    if (this.#brands === undefined) throw new InvalidAudio('the file does not start with an ftyp box');
    if (this.#moovs === 0) throw new InvalidAudio('no moov box (nothing describes the tracks)');
    if (this.#mdats === 0) throw new InvalidAudio('no mdat box (no media data)');
    if (this.#mediaBytes === 0) throw new InvalidAudio('the mdat box is empty');
    return { majorBrand: this.#brands.major, brands: this.#brands.all, tracks: this.#tracks, mediaBytes: this.#mediaBytes };
  }
}

/** The first sample entry of an `stsd` payload: its type and, for AAC, the channel count its decoder configuration gives. */
function sampleEntry(stsd: Buffer): Pick<Mp4Track, 'format' | 'channels'> {
  if (stsd.length < 16 || stsd.readUInt32BE(4) < 1) return { format: undefined, channels: undefined };
  const entrySize = stsd.readUInt32BE(8);
  const entry = stsd.subarray(8, 8 + Math.min(entrySize, stsd.length - 8));
  const format = entry.toString('latin1', 4, 8);
  // AudioSampleEntry: 8 header + 8 (reserved, data reference) + 20 (sound description v0);
  // QuickTime versions 1 and 2 add 16 and 36 bytes before the child boxes.
  if (entry.length < 36) return { format, channels: undefined };
  const version = entry.readUInt16BE(16);
  const childrenAt = 36 + (version === 1 ? 16 : version === 2 ? 36 : 0);
  const esds = findBox(entry, childrenAt, 'esds') ?? findBox(findBox(entry, childrenAt, 'wave') ?? Buffer.alloc(0), 0, 'esds');
  return { format, channels: esds ? aacChannels(esds) : undefined };
}

/** The payload of the first child box of that type in `bytes` from `at`, or undefined. */
function findBox(bytes: Buffer, at: number, type: string): Buffer | undefined {
  while (at + 8 <= bytes.length) {
    const size = bytes.readUInt32BE(at);
    if (size < 8 || at + size > bytes.length) return undefined;
    if (bytes.toString('latin1', at + 4, at + 8) === type) return bytes.subarray(at + 8, at + size);
    at += size;
  }
  return undefined;
}

/** The channel count of the AudioSpecificConfig inside an esds payload (ISO 14496-1 descriptors), when it gives one. */
function aacChannels(esds: Buffer): number | undefined {
  let at = 4; // version and flags
  const descriptor = (tag: number): number | undefined => {
    if (esds[at] !== tag) return undefined;
    at++;
    let length = 0;
    for (let i = 0; i < 4; i++) {
      const byte = esds[at++];
      if (byte === undefined) return undefined;
      length = (length << 7) | (byte & 0x7f);
      if ((byte & 0x80) === 0) break;
    }
    return length;
  };
  if (descriptor(0x03) === undefined) return undefined;
  const flags = esds[at + 2] ?? 0;
  at += 3;
  if (flags & 0x80) at += 2;
  if (flags & 0x40) at += 1 + (esds[at] ?? 0);
  if (flags & 0x20) at += 2;
  if (descriptor(0x04) === undefined || esds[at] !== 0x40) return undefined; // 0x40: MPEG-4 Audio
  at += 13;
  if (descriptor(0x05) === undefined || at + 2 > esds.length) return undefined;
  // audioObjectType (5 bits, 6 more when 31), samplingFrequencyIndex (4 bits, 24 more when 15), channelConfiguration (4 bits).
  let bit = at * 8;
  const bits = (n: number): number => {
    let value = 0;
    for (let i = 0; i < n; i++, bit++) value = (value << 1) | (((esds[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1);
    return value;
  };
  if (bits(5) === 31) bits(6);
  if (bits(4) === 15) bits(24);
  return AAC_CHANNELS[bits(4)];
}
