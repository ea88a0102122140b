import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { fixture, mp3 } from './audio-fixtures.ts';

/**
 * Files that pass for audio at a glance (right extension, right first bytes) and are not: what
 * processing must refuse. Each names the declared extension it is uploaded as and what the
 * rejection reason must say.
 */

export interface Hostile {
  name: string;
  extension: 'wav' | 'mp3' | 'm4a';
  bytes: Buffer;
  reason: RegExp;
}

/** The start of a 64-bit ELF executable (what `file` calls "ELF 64-bit LSB executable, x86-64"), then its "code". */
export function elfBinary(size: number): Buffer {
  const out = randomBytes(size);
  Buffer.from('7f454c4602010100000000000000000002003e0001000000', 'hex').copy(out);
  return out;
}

export function htmlPage(repeat = 40): Buffer {
  const row = '<tr><td><a href="https://example.com/">item</a></td><td>value</td></tr>\n';
  return Buffer.from(`<!DOCTYPE html>\n<html><head><title>x</title><script>alert(1)</script></head><body><table>\n${row.repeat(repeat)}</table></body></html>\n`);
}

/** A stored ZIP archive of one file (what a ZIP reader opens from the end: its central directory). */
export function zipArchive(name: string, content: Buffer): Buffer {
  const file = Buffer.from(name, 'latin1');
  const crc = crc32(content);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(content.length, 18);
  local.writeUInt32LE(content.length, 22);
  local.writeUInt16LE(file.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(content.length, 20);
  central.writeUInt32LE(content.length, 24);
  central.writeUInt16LE(file.length, 28);
  const directoryAt = local.length + file.length + content.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + file.length, 12);
  end.writeUInt32LE(directoryAt, 16);
  return Buffer.concat([local, file, content, central, file, end]);
}

/** A RIFF/WAVE header for `dataBytes` of 16-bit mono 16 kHz samples. */
export function wavHeader(dataBytes: number, riffSize = 36 + dataBytes): Buffer {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(riffSize, 4);
  header.write('WAVEfmt ', 8, 'latin1');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(16000, 24);
  header.writeUInt32LE(32000, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(dataBytes, 40);
  return header;
}

function box(type: string, ...payload: Buffer[]): Buffer {
  const body = Buffer.concat(payload);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + body.length, 0);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, body]);
}

function ftyp(major: string, ...compatible: string[]): Buffer {
  return box('ftyp', Buffer.from(major, 'latin1'), Buffer.alloc(4), ...compatible.map((b) => Buffer.from(b, 'latin1')));
}

/** The boxes of an HEIF still image (a real HEIC's layout: ftyp, meta with its handler and items, mdat). */
function heifBody(): Buffer {
  const hdlr = box('hdlr', Buffer.alloc(8), Buffer.from('pict', 'latin1'), Buffer.alloc(13));
  const pitm = box('pitm', Buffer.from([0, 0, 0, 0, 0, 1]));
  const meta = box('meta', Buffer.alloc(4), hdlr, pitm);
  return Buffer.concat([meta, box('mdat', randomBytes(4000))]);
}

/** Every hostile file, built fresh (random parts differ per call). */
export function hostileFiles(): Hostile[] {
  const wavFile = fixture('mono-16k.wav');
  const cbr = fixture('cbr-128k.mp3');
  const m4aFile = fixture('aac-mono.m4a');
  const elf = elfBinary(20_000);
  const html = htmlPage();
  const firstFrames = mp3(2000);
  return [
    // A real WAV header (its sizes are the recording's), then an executable instead of the samples.
    { name: 'a WAV header followed by an ELF binary', extension: 'wav', bytes: Buffer.concat([wavFile.subarray(0, 44), elf]), reason: /RIFF header says the file has 64078 bytes, but the upload has 20044/ },
    { name: 'a WAV header followed by an HTML page', extension: 'wav', bytes: Buffer.concat([wavFile.subarray(0, 44), html]), reason: /RIFF header says the file has 64078 bytes/ },
    // The same, with every size rewritten to fit: the structure is sound, the samples are not sound.
    { name: 'a WAV header sized to wrap an ELF binary', extension: 'wav', bytes: Buffer.concat([wavHeader(elf.length), elf]), reason: /samples start like an ELF executable/ },
    { name: 'a WAV header sized to wrap an HTML page', extension: 'wav', bytes: Buffer.concat([wavHeader(html.length), html]), reason: /samples are text/ },
    // A polyglot: a whole, valid WAV that is also a valid ZIP (ZIP readers look for the directory at the end).
    { name: 'a WAV/ZIP polyglot', extension: 'wav', bytes: Buffer.concat([wavFile, zipArchive('index.html', html)]), reason: /but the upload has 67189: 3111 bytes follow the end of the RIFF chunk/ },
    { name: 'a WAV with a chunk past the RIFF size', extension: 'wav', bytes: Buffer.concat([wavHeader(1000, 36 + 1000 + 8 + 500), randomBytes(1000), Buffer.from('JUNK'), Buffer.from([0x10, 0x27, 0, 0]), randomBytes(500)]), reason: /chunk "JUNK" \(10000 bytes at offset 1044\) runs past the end of the RIFF chunk/ },
    { name: 'a truncated WAV (RIFF says more than was sent)', extension: 'wav', bytes: wavFile.subarray(0, 40_000), reason: /RIFF header says the file has 64078 bytes, but the upload has 40000: it ends early/ },
    // MP3: real frames, then something else.
    { name: 'an MP3 whose frames are followed by an ELF binary', extension: 'mp3', bytes: Buffer.concat([firstFrames, elf]), reason: /20000 bytes at offset 2000 are not MPEG audio frames/ },
    { name: 'an MP3 followed by junk', extension: 'mp3', bytes: Buffer.concat([cbr, randomBytes(3000).fill(0x41, 0, 1)]), reason: /3000 bytes at offset 48981 are not MPEG audio frames/ },
    { name: 'an MP3/HTML polyglot (a page after the frames)', extension: 'mp3', bytes: Buffer.concat([cbr, html]), reason: /are not MPEG audio frames/ },
    { name: 'an ID3 tag followed by an ELF binary', extension: 'mp3', bytes: Buffer.concat([cbr.subarray(0, 81), elf]), reason: /no MPEG audio frame where the first should start/ },
    // M4A: an image passing as audio, and broken structures.
    { name: 'an HEIC image (ftypheic) declared as m4a', extension: 'm4a', bytes: Buffer.concat([ftyp('heic', 'mif1', 'heic'), heifBody()]), reason: /announces an image \(brand "heic"\)/ },
    { name: 'an HEIC image that lists M4A among its brands', extension: 'm4a', bytes: Buffer.concat([ftyp('M4A ', 'M4A ', 'isom', 'mif1'), heifBody()]), reason: /announces an image \(brand "mif1"\)/ },
    { name: 'an M4A brand with no moov (no track at all)', extension: 'm4a', bytes: Buffer.concat([ftyp('M4A ', 'M4A ', 'isom'), box('mdat', randomBytes(5000))]), reason: /no moov box/ },
    { name: 'an M4A followed by an ELF binary', extension: 'm4a', bytes: Buffer.concat([m4aFile, elf]), reason: /bytes at offset 26174 are not an MP4 box/ },
    { name: 'a truncated M4A (its last box cut)', extension: 'm4a', bytes: m4aFile.subarray(0, m4aFile.length - 100), reason: /runs past the end of the upload/ },
  ];
}
