import { describe, expect, it } from 'vitest';
import { CONTENT_TYPES, extensionOf, sniffAudio } from '../../lib/audio-formats.ts';
import { m4a, mp3, mp3FrameSync, notAudio, wav } from '../support/audio-fixtures.ts';

/** The first bytes of a file, padded with zeros to `length` (the sniffer never reads past what it is given). */
function head(bytes: number[] | string, length = 12): Buffer {
  const out = Buffer.alloc(length);
  (typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes)).copy(out);
  return out;
}

describe('sniffAudio', () => {
  it('recognises WAV, MP3 (ID3 and frame sync) and M4A', () => {
    expect(sniffAudio(wav(100))).toBe('wav');
    expect(sniffAudio(mp3(1000))).toBe('mp3');
    expect(sniffAudio(mp3FrameSync(1000))).toBe('mp3');
    expect(sniffAudio(m4a(1000))).toBe('m4a');
  });

  it('refuses other content, RIFF that is not WAVE, and impossible MPEG headers', () => {
    expect(sniffAudio(notAudio(100))).toBeUndefined();
    const avi = wav(100);
    avi.write('AVI ', 8, 'ascii');
    expect(sniffAudio(avi)).toBeUndefined();
    expect(sniffAudio(Buffer.from([0xff, 0xe8, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeUndefined(); // reserved version
    expect(sniffAudio(Buffer.from([0xff, 0xfb, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeUndefined(); // bad bitrate
    expect(sniffAudio(Buffer.alloc(0))).toBeUndefined();
  });

  describe('WAV', () => {
    it('needs both RIFF at 0 and WAVE at 8', () => {
      expect(sniffAudio(head('RIFF\x24\x00\x00\x00WAVE'))).toBe('wav');
      // Big-endian RIFX, or anything else with WAVE at offset 8, is not a WAV the product reads.
      expect(sniffAudio(head('RIFX\x00\x00\x00\x24WAVE'))).toBeUndefined();
      expect(sniffAudio(head('\x00\x00\x00\x00\x00\x00\x00\x00WAVE'))).toBeUndefined();
    });

    it('decides from exactly 12 bytes, and not from fewer', () => {
      expect(sniffAudio(Buffer.from('RIFF\x24\x00\x00\x00WAVE', 'latin1'))).toBe('wav');
      expect(sniffAudio(Buffer.from('RIFF\x24\x00\x00\x00WAV', 'latin1'))).toBeUndefined();
    });
  });

  describe('M4A', () => {
    it('is recognised by ftyp at offset 4 from exactly 8 bytes on', () => {
      expect(sniffAudio(Buffer.from('\x00\x00\x00\x20ftyp', 'latin1'))).toBe('m4a');
      expect(sniffAudio(Buffer.from('\x00\x00\x00\x20fty', 'latin1'))).toBeUndefined();
    });
  });

  describe('MP3', () => {
    it('is recognised by an ID3 tag from exactly 3 bytes on', () => {
      expect(sniffAudio(Buffer.from('ID3', 'latin1'))).toBe('mp3');
      expect(sniffAudio(Buffer.from('ID', 'latin1'))).toBeUndefined();
    });

    // 0xff 0xfb 0x90: sync, MPEG-1, Layer III, no CRC; 128 kbit/s, 44.1 kHz: the commonest MP3 frame header.
    it('is recognised by a plausible frame header, which takes 3 bytes', () => {
      expect(sniffAudio(head([0xff, 0xfb, 0x90]))).toBe('mp3');
      expect(sniffAudio(Buffer.from([0xff, 0xfb, 0x90]))).toBe('mp3');
      // Two bytes say nothing of the bitrate and sample rate yet.
      expect(sniffAudio(Buffer.from([0xff, 0xfb]))).toBeUndefined();
    });

    it('needs all 11 sync bits', () => {
      expect(sniffAudio(head([0xfe, 0xfb, 0x90]))).toBeUndefined(); // first byte one bit short
      expect(sniffAudio(head([0x00, 0xfb, 0x90]))).toBeUndefined();
      expect(sniffAudio(head([0xff, 0xdb, 0x90]))).toBeUndefined(); // 10 sync bits, the rest a valid MPEG-1 Layer III header
      expect(sniffAudio(head([0xff, 0x1b, 0x90]))).toBeUndefined();
    });

    it('refuses each reserved or unusable field on its own', () => {
      expect(sniffAudio(head([0xff, 0xeb, 0x90]))).toBeUndefined(); // version 01 (reserved), layer III
      expect(sniffAudio(head([0xff, 0xf9, 0x90]))).toBeUndefined(); // MPEG-1, layer 00 (reserved)
      expect(sniffAudio(head([0xff, 0xfb, 0xf0]))).toBeUndefined(); // bitrate index 1111 (bad)
      expect(sniffAudio(head([0xff, 0xfb, 0x9c]))).toBeUndefined(); // sample rate 11 (reserved)
    });

    it('accepts every defined version and layer, and the free bitrate', () => {
      expect(sniffAudio(head([0xff, 0xf3, 0x90]))).toBe('mp3'); // MPEG-2, layer III
      expect(sniffAudio(head([0xff, 0xe3, 0x90]))).toBe('mp3'); // MPEG-2.5, layer III
      expect(sniffAudio(head([0xff, 0xfd, 0x90]))).toBe('mp3'); // MPEG-1, layer II
      expect(sniffAudio(head([0xff, 0xff, 0x90]))).toBe('mp3'); // MPEG-1, layer I
      expect(sniffAudio(head([0xff, 0xfb, 0x08]))).toBe('mp3'); // bitrate index 0 (free format), 32 kHz
    });
  });
});

describe('CONTENT_TYPES', () => {
  // What browsers and recorders actually send for each format (Chrome, Firefox, Safari, Windows and Android differ).
  const sent: Array<[string, 'mp3' | 'wav' | 'm4a']> = [
    ['audio/mpeg', 'mp3'],
    ['audio/mp3', 'mp3'],
    ['audio/mpeg3', 'mp3'],
    ['audio/x-mpeg-3', 'mp3'],
    ['audio/wav', 'wav'],
    ['audio/wave', 'wav'],
    ['audio/x-wav', 'wav'],
    ['audio/vnd.wave', 'wav'],
    ['audio/mp4', 'm4a'],
    ['audio/x-m4a', 'm4a'],
    ['audio/m4a', 'm4a'],
    ['audio/aac', 'm4a'],
  ];

  it.each(sent)('accepts %s for .%s files, and for no other format', (type, extension) => {
    for (const [ext, types] of Object.entries(CONTENT_TYPES)) expect(types.includes(type), `${type} for .${ext}`).toBe(ext === extension);
  });

  it('lists the registered type of each format first (it is stored when the client sends a generic one)', () => {
    expect([CONTENT_TYPES.mp3[0], CONTENT_TYPES.wav[0], CONTENT_TYPES.m4a[0]]).toEqual(['audio/mpeg', 'audio/wav', 'audio/mp4']);
  });
});

describe('extensionOf', () => {
  it('takes the extension after the last dot, case-insensitively', () => {
    expect(extensionOf('a.b.WAV')).toBe('wav');
    expect(extensionOf('noext')).toBe('');
  });

  it('counts a dot at the very start: ".mp3" is an mp3, "a." has an empty extension', () => {
    expect(extensionOf('.mp3')).toBe('mp3');
    expect(extensionOf('a.')).toBe('');
  });
});
