import { createHash, randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Recordings of any requested size, real and consistent, as processing now demands (it parses
 * every upload whole: lib/processing/audio-check.ts). Each call's bytes differ (random samples,
 * a random starting frame, random tag contents), so no two tests share content.
 *
 * - `wav`: a PCM header and random samples (any bytes are valid PCM).
 * - `mp3`, `mp3FrameSync`, `m4a`: built from the real files that ffmpeg encoded into
 *   test/fixtures/audio/ (scripts/make-audio-fixtures.sh): their MPEG frames or AAC access
 *   units, repeated from a random place, in a container sized to the exact byte.
 */

export const FIXTURES_DIR = join(import.meta.dirname, '..', 'fixtures', 'audio');

/** A committed fixture's bytes (test/fixtures/audio/<name>). */
export function fixture(name: string): Buffer {
  return readFileSync(join(FIXTURES_DIR, name));
}

/** A WAV of exactly `size` bytes: PCM mono 16 kHz, 16-bit (8-bit when the size leaves an odd number of sample bytes, so samples are whole). */
export function wav(size: number): Buffer {
  if (size < 45) throw new Error('a WAV needs at least 45 bytes (one sample)');
  const bytesPerSample = (size - 44) % 2 === 0 ? 2 : 1;
  const out = randomBytes(size);
  out.write('RIFF', 0, 'ascii');
  out.writeUInt32LE(size - 8, 4);
  out.write('WAVEfmt ', 8, 'ascii');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20); // PCM
  out.writeUInt16LE(1, 22); // mono
  out.writeUInt32LE(16000, 24);
  out.writeUInt32LE(16000 * bytesPerSample, 28);
  out.writeUInt16LE(bytesPerSample, 32);
  out.writeUInt16LE(8 * bytesPerSample, 34);
  out.write('data', 36, 'ascii');
  out.writeUInt32LE(size - 44, 40);
  // Random samples could start like another file's signature (one chance in millions): never.
  out[44] = 0x01;
  return out;
}

/** An MP3 of exactly `size` bytes: an ID3v2.4 tag (a PRIV frame of random bytes takes up the slack), then real 128 kbit/s frames. */
export function mp3(size: number): Buffer {
  const owner = Buffer.from('transcribo-test\0', 'latin1');
  const overhead = 10 + 10 + owner.length;
  const frames = framesFilling(size - overhead, 'mp3');
  const slack = size - overhead - byteLength(frames);
  const id3 = Buffer.alloc(overhead);
  id3.write('ID3', 0, 'latin1');
  id3[3] = 4;
  syncsafe(10 + owner.length + slack, id3, 6);
  id3.write('PRIV', 10, 'latin1');
  syncsafe(owner.length + slack, id3, 14);
  owner.copy(id3, 20);
  return Buffer.concat([id3, randomBytes(slack), ...frames]);
}

/** An MP3 of exactly `size` bytes that starts with a frame: real 128 kbit/s frames, then an APEv2 tag (random text takes up the slack). */
export function mp3FrameSync(size: number): Buffer {
  const key = Buffer.from('Comment\0', 'latin1');
  const overhead = 8 + key.length + 32;
  const frames = framesFilling(size - overhead, 'mp3FrameSync');
  const value = Buffer.from(randomBytes(size).toString('hex').slice(0, size - overhead - byteLength(frames)), 'latin1');
  const item = Buffer.alloc(8);
  item.writeUInt32LE(value.length, 0);
  const footer = Buffer.alloc(32);
  footer.write('APETAGEX', 0, 'latin1');
  footer.writeUInt32LE(2000, 8);
  footer.writeUInt32LE(8 + key.length + value.length + 32, 12);
  footer.writeUInt32LE(1, 16);
  return Buffer.concat([...frames, item, key, value, footer]);
}

/**
 * An M4A of exactly `size` bytes: ftyp, a moov written for the access units chosen (one AAC-LC
 * mono track, the fixture's own sample description), a `free` box of random bytes for the
 * slack (at most one access unit's worth), then the mdat.
 */
export function m4a(size: number): Buffer {
  const source = aacSource();
  const units: Buffer[] = [];
  // ftyp, an empty moov and the mdat header; each access unit adds its bytes and its stsz entry.
  let total = source.ftyp.length + moov(source, [], 0).length + 8;
  for (let i = randomInt(source.units.length); ; i = (i + 1) % source.units.length) {
    const unit = source.units[i]!;
    if (total + unit.length + 4 > size) break;
    units.push(unit);
    total += unit.length + 4;
  }
  while (units.length > 0 && size - total > 0 && size - total < 8) total -= units.pop()!.length + 4;
  if (units.length === 0) throw new Error(`an M4A needs more than ${size} bytes`);
  const slack = size - total;
  const free = slack === 0 ? Buffer.alloc(0) : box('free', randomBytes(slack - 8));
  const sizes = units.map((u) => u.length);
  const mdatAt = source.ftyp.length + moov(source, sizes, 0).length + free.length;
  const out = Buffer.concat([source.ftyp, moov(source, sizes, mdatAt), free, box('mdat', Buffer.concat(units))]);
  if (out.length !== size) throw new Error(`m4a(${size}) came out ${out.length} bytes`);
  return out;
}

export function notAudio(size: number): Buffer {
  const out = randomBytes(size);
  out.write('%PDF-1.7', 0, 'ascii');
  return out;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

// --- MPEG frames of the CBR fixture -----------------------------------------------------------

let mpegFrames: Buffer[] | undefined;

/** The audio frames of cbr-128k.mp3, without its ID3v2 tag and its LAME Info frame. */
export function cbrFrames(): Buffer[] {
  if (mpegFrames) return mpegFrames;
  const file = fixture('cbr-128k.mp3');
  let at = 0;
  if (file.toString('latin1', 0, 3) === 'ID3') at = 10 + [6, 7, 8, 9].reduce((n, i) => n * 128 + file[i]!, 0);
  const frames: Buffer[] = [];
  while (at + 4 <= file.length && file[at] === 0xff) {
    const bitrate = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320][file[at + 2]! >> 4]! * 1000;
    const length = Math.floor((144 * bitrate) / 44100) + ((file[at + 2]! >> 1) & 1);
    frames.push(file.subarray(at, at + length));
    at += length;
  }
  // The first frame is LAME's Info frame: it describes the fixture (its frame count), not a stream of another length.
  mpegFrames = frames.slice(1);
  return mpegFrames;
}

function framesFilling(room: number, name: string): Buffer[] {
  const source = cbrFrames();
  const frames: Buffer[] = [];
  let used = 0;
  for (let i = randomInt(source.length); used + source[i]!.length <= room; i = (i + 1) % source.length) {
    frames.push(source[i]!);
    used += source[i]!.length;
  }
  if (frames.length === 0) throw new Error(`${name}() needs at least ${source[0]!.length + (name === 'mp3' ? 36 : 48)} bytes`);
  return frames;
}

const byteLength = (parts: Buffer[]) => parts.reduce((n, p) => n + p.length, 0);

function syncsafe(value: number, into: Buffer, at: number): void {
  for (let i = 3; i >= 0; i--, value >>>= 7) into[at + i] = value & 0x7f;
}

// --- AAC access units of the M4A fixture ------------------------------------------------------

interface AacSource {
  ftyp: Buffer;
  stsd: Buffer;
  timescale: number;
  delta: number;
  units: Buffer[];
}

let aac: AacSource | undefined;

function aacSource(): AacSource {
  if (aac) return aac;
  const file = fixture('aac-mono.m4a');
  const top = children(file, 0, file.length);
  const moovBox = top.get('moov')!;
  const stbl = path(file, moovBox, ['trak', 'mdia', 'minf', 'stbl']);
  const mdhd = path(file, moovBox, ['trak', 'mdia', 'mdhd']);
  const table = (name: string) => path(file, stbl, [name]);
  const stsz = table('stsz');
  const stco = table('stco');
  const stsc = table('stsc');
  const stts = table('stts');
  const sizes = Array.from({ length: file.readUInt32BE(stsz.start + 8) }, (_, i) => file.readUInt32BE(stsz.start + 12 + 4 * i));
  const chunkOffsets = Array.from({ length: file.readUInt32BE(stco.start + 4) }, (_, i) => file.readUInt32BE(stco.start + 8 + 4 * i));
  const runs = Array.from({ length: file.readUInt32BE(stsc.start + 4) }, (_, i) => ({
    first: file.readUInt32BE(stsc.start + 8 + 12 * i),
    perChunk: file.readUInt32BE(stsc.start + 12 + 12 * i),
  }));
  const units: Buffer[] = [];
  let sample = 0;
  chunkOffsets.forEach((offset, c) => {
    const perChunk = runs.filter((r) => r.first <= c + 1).at(-1)!.perChunk;
    for (let k = 0; k < perChunk && sample < sizes.length; k++, sample++) {
      units.push(file.subarray(offset, offset + sizes[sample]!));
      offset += sizes[sample]!;
    }
  });
  const stsdBox = table('stsd');
  aac = {
    ftyp: file.subarray(0, top.get('ftyp')!.end),
    stsd: file.subarray(stsdBox.start - 8, stsdBox.end),
    timescale: file.readUInt32BE(mdhd.start + 12),
    delta: file.readUInt32BE(stts.start + 12),
    units,
  };
  return aac;
}

interface Span {
  start: number;
  end: number;
}

function children(file: Buffer, start: number, end: number): Map<string, Span> {
  const found = new Map<string, Span>();
  for (let at = start; at + 8 <= end; ) {
    const size = file.readUInt32BE(at);
    const type = file.toString('latin1', at + 4, at + 8);
    if (!found.has(type)) found.set(type, { start: at + 8, end: at + size });
    at += size;
  }
  return found;
}

function path(file: Buffer, from: Span, names: string[]): Span {
  return names.reduce((span, name) => {
    const next = children(file, span.start, span.end).get(name);
    if (!next) throw new Error(`fixture has no ${name}`);
    return next;
  }, from);
}

function box(type: string, ...payload: Buffer[]): Buffer {
  const body = Buffer.concat(payload);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + body.length, 0);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, body]);
}

const u32 = (...values: number[]) => {
  const out = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => out.writeUInt32BE(v, 4 * i));
  return out;
};
const u32array = (values: readonly number[]) => {
  const out = Buffer.alloc(4 * values.length);
  for (let i = 0; i < values.length; i++) out.writeUInt32BE(values[i]!, 4 * i);
  return out;
};
const MATRIX = u32(0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000);

function moov(source: AacSource, sizes: number[], mdatAt: number): Buffer {
  const samples = sizes.length * source.delta;
  const ms = Math.round((samples * 1000) / source.timescale);
  const mvhd = box('mvhd', u32(0, 0, 0, 1000, ms, 0x10000), Buffer.from([1, 0]), Buffer.alloc(10), MATRIX, Buffer.alloc(24), u32(2));
  const tkhd = box('tkhd', u32(3, 0, 0, 1, 0, ms, 0, 0, 0), Buffer.from([1, 0, 0, 0]), MATRIX, u32(0, 0));
  const mdhd = box('mdhd', u32(0, 0, 0, source.timescale, samples), Buffer.from([0x55, 0xc4, 0, 0]));
  const hdlr = box('hdlr', u32(0, 0), Buffer.from('soun', 'latin1'), Buffer.alloc(12), Buffer.from('SoundHandler\0', 'latin1'));
  const smhd = box('smhd', u32(0, 0));
  const dinf = box('dinf', box('dref', u32(0, 1), box('url ', u32(1))));
  const stbl = box(
    'stbl',
    source.stsd,
    box('stts', u32(0, 1, sizes.length, source.delta)),
    box('stsc', u32(0, 1, 1, sizes.length, 1)),
    box('stsz', u32(0, 0, sizes.length), u32array(sizes)),
    box('stco', u32(0, 1, mdatAt + 8)),
  );
  return box('moov', mvhd, box('trak', tkhd, box('mdia', mdhd, hdlr, box('minf', smhd, dinf, stbl))));
}
